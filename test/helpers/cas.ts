import { ingestNar, type IngestOptions, type IngestResult } from '../../src/ingest/ingest.ts'
import { dumpPath } from '../../src/fs/dump-path.ts'
import { writeNar } from '../../src/nix/nar-writer.ts'
import { loadLayout } from '../../src/render/load.ts'
import { renderNar, type NarRange, type RenderOptions } from '../../src/render/render.ts'
import type { Cas } from '../../src/cas/cas.ts'
import type { ObjectStore } from '../../src/stores/store.ts'
import type { NixHash } from '../../src/nix/hash.ts'
import { collect } from './streams.ts'

export function ingestPath(cas: Cas, path: string, options?: IngestOptions): Promise<IngestResult> {
  return ingestNar(cas, writeNar(dumpPath(path)), options)
}

/** Renders a whole NAR (or a range) into one buffer; for test-sized data. */
export async function renderToBuffer(cas: Cas, nar: { narHash: NixHash }, range?: NarRange, options?: RenderOptions): Promise<Buffer> {
  const layout = await loadLayout(cas, nar.narHash)
  return collect(renderNar(cas, layout, range, options))
}

/** Total bytes and count of the objects under a prefix. */
export async function storedBytes(store: ObjectStore, prefix: string): Promise<{ bytes: number; objects: number }> {
  let bytes = 0
  let objects = 0
  for await (const object of store.list(prefix)) {
    bytes += object.size
    objects++
  }
  return { bytes, objects }
}

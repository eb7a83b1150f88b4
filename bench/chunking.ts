/**
 * Which chunk sizes? Ingests a real tree, then a "rebuild" of it (a third of its files
 * with store-path-sized edits, as when a dependency's hash changes), and reports, per
 * candidate: bytes the rebuild added (dedup), objects stored, chunks a NAR needs (S3
 * requests at render) and ingest speed.
 *   npm run bench -- chunking
 */
import { randomBytes } from 'node:crypto'
import { cp, mkdtemp, open, readdir, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type ChunkSizes } from '../src/castore/chunker.ts'
import { dumpPath } from '../src/fs/dump-path.ts'
import { ingestNar } from '../src/ingest/ingest.ts'
import { writeNar } from '../src/nix/nar-writer.ts'
import { Cas } from '../src/cas/cas.ts'
import { MemoryStore } from '../src/stores/memory.ts'
import type { ObjectStore } from '../src/stores/store.ts'
import { MB, makeBenchTree, report } from './lib.ts'

const KiB = 1024
const CANDIDATES: ChunkSizes[] = [
  { min: 16 * KiB, avg: 64 * KiB, max: 256 * KiB },
  { min: 64 * KiB, avg: 256 * KiB, max: 1024 * KiB },
  { min: 256 * KiB, avg: 1024 * KiB, max: 4096 * KiB },
]

async function listFiles(dir: string, out: string[] = []): Promise<string[]> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) await listFiles(path, out)
    else if (entry.isFile()) out.push(path)
  }
  return out
}

/** A copy of `source` where a third of the files have three 32-byte spans rewritten. */
async function rebuild(source: string, target: string): Promise<void> {
  await cp(source, target, { recursive: true, verbatimSymlinks: true })
  const files = (await listFiles(target)).sort()
  for (let index = 0; index < files.length; index += 3) {
    const path = files[index] as string
    const { size } = await stat(path)
    if (size < 64) continue
    const handle = await open(path, 'r+')
    for (let edit = 0; edit < 3; edit++) await handle.write(randomBytes(32), 0, 32, Math.floor(((edit + 1) * size) / 4) - 16)
    await handle.close()
  }
}

async function objects(store: ObjectStore, prefix: string): Promise<{ count: number; bytes: number }> {
  let count = 0
  let bytes = 0
  for await (const object of store.list(prefix)) {
    count++
    bytes += object.size
  }
  return { count, bytes }
}

export async function benchChunking(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'nixcas-bench-chunking-'))
  try {
    // Real binaries when the machine has them; a generated tree otherwise.
    const corpus = join(dir, 'v1')
    try {
      await cp('/usr/bin', corpus, { recursive: true, verbatimSymlinks: true, filter: (path) => !path.includes('/.') })
    } catch {
      await makeBenchTree(corpus)
    }
    await rebuild(corpus, join(dir, 'v2'))
    const rows: Record<string, string | number>[] = []
    for (const sizes of CANDIDATES) {
      const store = new MemoryStore('memory')
      const cas = new Cas(store)
      const start = process.hrtime.bigint()
      const first = await ingestNar(cas, writeNar(dumpPath(corpus)), { chunkSizes: sizes })
      const seconds = Number(process.hrtime.bigint() - start) / 1e9
      const once = await objects(store, 'chunks/')
      await ingestNar(cas, writeNar(dumpPath(join(dir, 'v2'))), { chunkSizes: sizes })
      const twice = await objects(store, 'chunks/')
      rows.push({
        'min/avg/max KiB': `${sizes.min / KiB}/${sizes.avg / KiB}/${sizes.max / KiB}`,
        'NAR MB': (first.narSize / MB).toFixed(0),
        chunks: once.count,
        'rebuild adds MB': ((twice.bytes - once.bytes) / MB).toFixed(1),
        'rebuild adds %': ((100 * (twice.bytes - once.bytes)) / first.narSize).toFixed(1),
        'objects after both': twice.count,
        'ingest MB/s': Math.round(first.narSize / MB / seconds),
      })
    }
    console.log('Chunk sizes: a tree, then a rebuild with a third of its files edited (3 × 32 bytes each)')
    report(rows)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/**
 * Ingest and render throughput: into and out of an fs store, beside `nix-store --dump` of
 * the same tree; then rendering from s3rver behind 10 ms of added latency with one
 * request at a time (C=1) against the default window; peak RSS of each phase.
 *   npm run bench -- castore
 */
import { createHash } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { dumpPath } from '../src/fs/dump-path.ts'
import { ingestNar } from '../src/ingest/ingest.ts'
import { writeNar } from '../src/nix/nar-writer.ts'
import { loadClosure } from '../src/render/closure.ts'
import { layoutNar } from '../src/render/layout.ts'
import { RENDER_DEFAULTS, renderNar, type RenderOptions } from '../src/render/render.ts'
import { Cas } from '../src/cas/cas.ts'
import { FsStore } from '../src/stores/fs.ts'
import { S3Store } from '../src/stores/s3.ts'
import type { CasNode } from '../src/castore/node.ts'
import { startFaultyProxy } from '../test/helpers/faulty-proxy.ts'
import { startS3 } from '../test/helpers/s3.ts'
import { MB, best, countOutput, hasCommand, makeBenchTree, report } from './lib.ts'

/** Teardown hooks for the test servers the bench borrows. */
function scope(): { teardown: (fn: () => unknown) => void; close: () => Promise<void> } {
  const hooks: (() => unknown)[] = []
  return { teardown: (fn) => hooks.push(fn), close: async () => { for (const hook of hooks.reverse()) await hook() } }
}

/** Best of `runs` timings of `work`, sampling RSS; seconds and the peak RSS growth in MB. */
async function measured(work: () => Promise<unknown>, runs = 1): Promise<{ seconds: number; rss: number }> {
  const before = process.memoryUsage.rss()
  let peak = before
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 5)
  const seconds = await best(runs, work)
  clearInterval(timer)
  return { seconds, rss: (peak - before) / MB }
}

async function render(cas: Cas, root: CasNode, options?: RenderOptions): Promise<number> {
  const layout = layoutNar(root, await loadClosure(cas, root))
  let size = 0
  for await (const chunk of renderNar(cas, layout, undefined, options)) size += chunk.length
  return size
}

export async function benchCastore(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'nixcas-bench-castore-'))
  const servers = scope()
  try {
    const tree = join(dir, 'tree')
    await makeBenchTree(tree)
    const rows: Record<string, string | number>[] = []
    const fsCas = new Cas(new FsStore('disk', { path: join(dir, 'store'), fsync: false }))
    let root: CasNode | undefined
    let size = 0
    const ingest = await measured(async () => {
      const result = await ingestNar(fsCas, writeNar(dumpPath(tree)))
      root = result.root
      size = result.narSize
    })
    rows.push({ what: 'ingest tree → fs store', 'MB/s': Math.round(size / MB / ingest.seconds), 'peak RSS +MB': ingest.rss.toFixed(0) })
    const fromFs = await measured(() => render(fsCas, root as CasNode), 3)
    rows.push({ what: 'render NAR ← fs store', 'MB/s': Math.round(size / MB / fromFs.seconds), 'peak RSS +MB': fromFs.rss.toFixed(0) })
    const sha = await measured(async () => {
      const hash = createHash('sha256')
      const layout = layoutNar(root as CasNode, await loadClosure(fsCas, root as CasNode))
      for await (const chunk of renderNar(fsCas, layout)) hash.update(chunk)
    }, 3)
    rows.push({ what: 'render ← fs + sha256 (what a client checks)', 'MB/s': Math.round(size / MB / sha.seconds), 'peak RSS +MB': sha.rss.toFixed(0) })
    if (hasCommand('nix-store')) {
      const dump = await best(3, () => countOutput('nix-store', ['--dump', tree]))
      rows.push({ what: 'nix-store --dump of the tree', 'MB/s': Math.round(size / MB / dump), 'peak RSS +MB': '-' })
    }

    const s3 = await startS3(servers)
    const direct = new S3Store('bucket', s3.options)
    const s3Cas = new Cas(direct)
    await ingestNar(s3Cas, writeNar(dumpPath(tree)))
    const proxy = await startFaultyProxy(servers, s3.endpoint, { latency: 10 })
    const far = new S3Store('far', { ...s3.options, endpoint: proxy.endpoint })
    const farCas = new Cas(far)
    for (const [label, options] of [
      [`render ← s3rver +10 ms, C=1`, { maxRequests: 1 }],
      [`render ← s3rver +10 ms, C=${RENDER_DEFAULTS.remote.maxRequests}, W=${RENDER_DEFAULTS.remote.windowBytes / 1048576} MiB (default)`, {}],
    ] as const) {
      const run = await measured(() => render(farCas, root as CasNode, options), options.maxRequests === 1 ? 1 : 3)
      rows.push({ what: label, 'MB/s': Math.round(size / MB / run.seconds), 'peak RSS +MB': run.rss.toFixed(0) })
    }
    await direct.close()
    await far.close()
    const nix = rows.find((row) => String(row.what).startsWith('nix-store'))
    for (const row of rows) row['× nix-store --dump'] = nix ? (Number(row['MB/s']) / Number(nix['MB/s'])).toFixed(2) : '-'
    console.log(`NAR of ${(size / MB).toFixed(0)} MB (4 large files, 4,000 small ones)`)
    report(rows)
  } finally {
    await servers.close()
    await rm(dir, { recursive: true, force: true })
  }
}

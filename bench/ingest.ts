/**
 * Where an ingest's time goes, side by side in one run: the per-byte floors (sha256 of the
 * NAR, BLAKE3, the FastCDC scan, a copy), a whole ingest through the worker pool into an fs
 * store (with and without fsync), and beside it the same NAR written to a file as a plain
 * file server would (with and without fsync). Per thread: how long the main thread and the
 * worker were busy, which says which one limits.
 *   npm run bench -- ingest
 * NIXCAS_BENCH_INGEST_TREE (default /usr/share/doc) is the tree whose NAR is ingested.
 */
import { createHash } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdtemp, open, readFile, rm, stat } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { Cas } from '../src/cas/cas.ts'
import { Chunker, DEFAULT_CHUNK_SIZES, cutPoint } from '../src/castore/chunker.ts'
import { BLAKE3_IMPLEMENTATION, digestOf } from '../src/castore/digest.ts'
import type { CodecMethod } from '../src/codec/methods.ts'
import { dumpPath } from '../src/fs/dump-path.ts'
import { storeNar } from '../src/ingest/ingest.ts'
import { IngestWorkers } from '../src/ingest/parse/workers.ts'
import { writeNar } from '../src/nix/nar-writer.ts'
import { FsStore } from '../src/stores/fs.ts'
import { MB, hasCommand, markdownTable, sh } from './lib.ts'
import { machineLine, writeResultSection } from './results.ts'

const REPS = 3
const PIECE = 64 * 1024

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number

/** Median milliseconds of `work` over REPS runs, after one untimed run. */
async function timed(work: () => Promise<void> | void): Promise<number> {
  await work()
  const runs: number[] = []
  for (let rep = 0; rep < REPS; rep++) {
    const start = performance.now()
    await work()
    runs.push(performance.now() - start)
  }
  return median(runs)
}

/** The file written as a plain file server writes an upload: 64 KiB pieces, then (maybe) fsync. */
async function plainWrite(source: string, target: string, fsync: boolean): Promise<void> {
  const handle = await open(target, 'w')
  try {
    for await (const piece of createReadStream(source, { highWaterMark: PIECE })) await handle.write(piece as Buffer)
    if (fsync) await handle.sync()
  } finally {
    await handle.close()
  }
  await rm(target)
}

interface IngestRun {
  ms: number
  mainMs: number
  workerMs: number
}

/** One ingest through the pool into a fresh fs store; busy times from each thread's event-loop utilisation. */
async function ingestOnce(workers: IngestWorkers, dir: string, file: string, method: CodecMethod, fsync: boolean): Promise<IngestRun> {
  const root = await mkdtemp(join(dir, 'store-'))
  const cas = new Cas(new FsStore('bench', { path: root, fsync }))
  const main = performance.eventLoopUtilization()
  const threads = workers.threads()
  const before = threads.map((thread) => thread.performance.eventLoopUtilization())
  const start = performance.now()
  await storeNar(cas, workers.parse(createReadStream(file, { highWaterMark: PIECE }), { method }))
  const ms = performance.now() - start
  const mainMs = performance.eventLoopUtilization(main).active
  const workerMs = threads.reduce((total, thread, index) => total + thread.performance.eventLoopUtilization(before[index]).active, 0)
  await rm(root, { recursive: true, force: true })
  return { ms, mainMs, workerMs }
}

async function ingestRuns(workers: IngestWorkers, dir: string, file: string, method: CodecMethod, fsync: boolean): Promise<IngestRun> {
  await ingestOnce(workers, dir, file, method, fsync)
  const runs: IngestRun[] = []
  for (let rep = 0; rep < REPS; rep++) runs.push(await ingestOnce(workers, dir, file, method, fsync))
  return { ms: median(runs.map((run) => run.ms)), mainMs: median(runs.map((run) => run.mainMs)), workerMs: median(runs.map((run) => run.workerMs)) }
}

export async function benchIngest(): Promise<void> {
  if (!hasCommand('zstd')) throw new Error('zstd is needed to make the benchmark input')
  const dir = await mkdtemp(join(tmpdir(), 'nixcas-bench-ingest-'))
  const workers = new IngestWorkers()
  try {
    const tree = process.env.NIXCAS_BENCH_INGEST_TREE ?? '/usr/share/doc'
    const nar = join(dir, 'tree.nar')
    await pipeline(Readable.from(writeNar(dumpPath(tree))), createWriteStream(nar))
    await sh(`zstd -c -q -3 < ${nar} > ${nar}.zst`)
    const size = (await stat(nar)).size
    const rate = (ms: number): number => Math.round(size / MB / (ms / 1000))
    const bytes = await readFile(nar)

    const rows: Record<string, string | number>[] = []
    const floor = async (what: string, work: () => void): Promise<void> => {
      const ms = await timed(work)
      rows.push({ what, 'NAR MB/s': rate(ms), ms: Math.round(ms), 'main busy ms': '', 'worker busy ms': '', 'vs plain write (no fsync)': '' })
      console.log(rows.at(-1))
    }
    await floor('sha256 of the NAR (node:crypto), 64 KiB pieces', () => {
      const hash = createHash('sha256')
      for (let at = 0; at < bytes.length; at += PIECE) hash.update(bytes.subarray(at, at + PIECE))
      hash.digest()
    })
    await floor(`BLAKE3 of the NAR (${BLAKE3_IMPLEMENTATION}), 256 KiB pieces`, () => {
      for (let at = 0; at < bytes.length; at += 256 * 1024) digestOf(bytes.subarray(at, at + 256 * 1024))
    })
    await floor('FastCDC cut points over the whole NAR, in JavaScript (cutPoint, the reference)', () => {
      for (let at = 0; at < bytes.length; ) at += cutPoint(bytes, at, bytes.length, DEFAULT_CHUNK_SIZES)
    })
    await floor('FastCDC cut points over the whole NAR, as ingests scan (Chunker: WebAssembly)', () => {
      // One piece, so every chunk is a view and only the scan is timed.
      const chunker = new Chunker(DEFAULT_CHUNK_SIZES)
      for (const chunk of chunker.push(bytes)) void chunk
      for (const chunk of chunker.finish()) void chunk
    })
    await floor('a copy of the NAR into a fresh buffer', () => {
      Buffer.from(bytes)
    })

    const plain = await timed(() => plainWrite(nar, join(dir, 'plain'), false))
    const plainSynced = await timed(() => plainWrite(nar, join(dir, 'plain'), true))
    const written = (what: string, ms: number): void => {
      rows.push({ what, 'NAR MB/s': rate(ms), ms: Math.round(ms), 'main busy ms': '', 'worker busy ms': '', 'vs plain write (no fsync)': `${(plain / ms).toFixed(2)}×` })
      console.log(rows.at(-1))
    }
    written('plain file write of the NAR, no fsync (what nginx WebDAV does)', plain)
    written('plain file write of the NAR, then fsync', plainSynced)
    for (const [method, file] of [['none', nar], ['zstd', `${nar}.zst`]] as const) {
      for (const fsync of [true, false]) {
        const run = await ingestRuns(workers, dir, file, method, fsync)
        rows.push({
          what: `nixcas ingest, ${method === 'none' ? 'uncompressed' : 'zstd -3'} body, fs store${fsync ? '' : ' with fsync off'}`,
          'NAR MB/s': rate(run.ms),
          ms: Math.round(run.ms),
          'main busy ms': Math.round(run.mainMs),
          'worker busy ms': Math.round(run.workerMs),
          'vs plain write (no fsync)': `${(plain / run.ms).toFixed(2)}×`,
        })
        console.log(rows.at(-1))
      }
    }
    console.table(rows)
    const how = `NAR of \`${tree}\` (${(size / MB).toFixed(0)} MB), read from a file in 64 KiB pieces as a socket delivers a body. Medians of ${REPS} runs after one untimed run. The floors run in one thread on bytes in memory; an ingest runs decode, parse, chunking and hashing in the worker pool and packs, records and the dedup index on the main thread. Busy ms: each thread's event-loop utilisation during the ingest.`
    const title = '## ingest: where the time of a NAR upload goes'
    const when = `\`npm run bench -- ingest\` — ${machineLine()}; load average ${loadavg()[0]?.toFixed(2)} at the end; ${workers.size} ingest worker(s)`
    await writeResultSection('ingest', [title, when, how, markdownTable(rows)].join('\n\n'))
  } finally {
    await workers.close()
    await rm(dir, { recursive: true, force: true })
  }
}

/**
 * The CPU half of an ingest (decode, NAR parse, chunk, hash): the in-thread producer
 * against the worker pool, 1 and 4 uploads at once, with the main thread's event-loop delay
 * (p99) while they run: what other requests would wait.
 *   npm run bench -- parse
 * NIXCAS_BENCH_PARSE_TREE (default /usr/bin) is the tree whose NAR is parsed.
 */
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { availableParallelism, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { CodecMethod } from '../src/codec/methods.ts'
import { dumpPath } from '../src/fs/dump-path.ts'
import type { IngestEvent } from '../src/ingest/events.ts'
import { parseNarEvents } from '../src/ingest/parse/parse.ts'
import { IngestWorkers } from '../src/ingest/parse/workers.ts'
import { writeNar } from '../src/nix/nar-writer.ts'
import { MB, hasCommand, markdownTable, report, sh } from './lib.ts'
import { machineLine, writeResultSection } from './results.ts'

type Producer = (body: AsyncIterable<Uint8Array>, method: CodecMethod) => AsyncIterable<IngestEvent>

interface Run {
  narBytes: number
  seconds: number
  /** p99 and max of the main thread's event-loop delay, ms. */
  p99: number
  max: number
  /** Share of wall time the main thread was busy. */
  mainBusy: number
}

/** Drains `sessions` uploads at once, as a consumer that takes every event at once would. */
async function measure(produce: Producer, path: string, method: CodecMethod, sessions: number): Promise<Run> {
  const delay = monitorEventLoopDelay({ resolution: 1 })
  const busy = performance.eventLoopUtilization()
  const start = process.hrtime.bigint()
  delay.enable()
  // Bodies as an HTTP request delivers them: 64 KiB reads, each its own buffer.
  const sizes = await Promise.all(
    Array.from({ length: sessions }, async () => {
      for await (const event of produce(createReadStream(path, { highWaterMark: 64 * 1024 }), method)) if (event.type === 'done') return event.narSize
      throw new Error('no done event')
    }),
  )
  delay.disable()
  const seconds = Number(process.hrtime.bigint() - start) / 1e9
  const narBytes = sizes.reduce((total, size) => total + size, 0)
  return { narBytes, seconds, p99: delay.percentile(99) / 1e6, max: delay.max / 1e6, mainBusy: performance.eventLoopUtilization(busy).utilization }
}

export async function benchParse(): Promise<void> {
  for (const tool of ['xz', 'zstd']) if (!hasCommand(tool)) throw new Error(`${tool} is needed to make the benchmark's inputs`)
  const dir = await mkdtemp(join(tmpdir(), 'nixcas-bench-parse-'))
  const workers = new IngestWorkers()
  const two = new IngestWorkers({ size: 2 })
  try {
    const tree = process.env.NIXCAS_BENCH_PARSE_TREE ?? '/usr/bin'
    const nar = join(dir, 'tree.nar')
    await pipeline(Readable.from(writeNar(dumpPath(tree))), createWriteStream(nar))
    const narMB = (await stat(nar)).size / MB
    const inputs: [CodecMethod, string][] = [['none', nar]]
    for (const [method, command, suffix] of [['zstd', 'zstd -c -q -3', 'zst'], ['xz', 'xz -c -T1 -6', 'xz']] as const) {
      console.log(`compressing the NAR with ${command}`)
      await sh(`${command} < ${nar} > ${nar}.${suffix}`)
      inputs.push([method, `${nar}.${suffix}`])
    }

    const producers: [string, Producer][] = [
      ['in-thread', (body, method) => parseNarEvents(body, { method })],
      [`workers (${workers.size})`, (body, method) => workers.parse(body, { method })],
      ['workers (2)', (body, method) => two.parse(body, { method })],
    ]
    const rows: Record<string, string | number>[] = []
    for (const [method, path] of inputs) {
      for (const sessions of [1, 4]) {
        for (const [name, produce] of producers) {
          if (name === 'workers (2)' && (workers.size === 2 || sessions === 1)) continue
          const run = await measure(produce, path, method, sessions)
          rows.push({
            method,
            uploads: sessions,
            producer: name,
            'NAR MB/s': Math.round(run.narBytes / MB / run.seconds),
            'loop delay p99 ms': run.p99.toFixed(1),
            'loop delay max ms': run.max.toFixed(0),
            'main thread busy %': Math.round(100 * run.mainBusy),
          })
          console.log(rows.at(-1))
        }
      }
    }
    report(rows)

    const table = markdownTable(rows)
    await writeResultSection(
      'parse',
      [
        '## parse: decode, NAR parse, chunk and hash, in-thread and in worker threads',
        '',
        `${machineLine()}; load average at the end ${loadavg()[0]?.toFixed(1)} on ${availableParallelism()} cores`,
        '',
        `NAR of \`${tree}\` (${narMB.toFixed(0)} MB), zstd -3 and xz -6 made by the CLIs; bodies read from a file in 64 KiB pieces; default chunk sizes; the consumer takes events as fast as they come (no storing). MB/s are NAR bytes over all uploads. Loop delay: \`monitorEventLoopDelay\` of the main thread during the run (what any other request would wait). Default pool size: max(1, cores − 1).`,
        '',
        table,
      ].join('\n'),
    )
  } finally {
    await Promise.all([workers.close(), two.close()])
    await rm(dir, { recursive: true, force: true })
  }
}

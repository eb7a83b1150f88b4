import { createHash } from 'node:crypto'
import { join } from 'node:path'
import t from 'tap'
import { DEFAULT_CHUNK_SIZES, type ChunkSizes } from '../../../src/castore/chunker.ts'
import type { IngestEvent } from '../../../src/ingest/events.ts'
import { parseNarEvents } from '../../../src/ingest/parse/parse.ts'
import { IngestWorkers } from '../../../src/ingest/parse/workers.ts'
import { NarError } from '../../../src/nix/nar-format.ts'
import { narOf } from '../../helpers/nar-samples.ts'
import { makeGoldenTrees, tempDir } from '../../helpers/trees.ts'
import { compress, describe, lazyFileNar, outcome, pieces, untilStats } from './helpers.ts'

const SMALL_CHUNKS: ChunkSizes = { min: 256, avg: 1024, max: 4096 }
const METHODS = ['none', 'xz', 'zstd', 'bzip2'] as const

const workers = new IngestWorkers({ size: 2 })
t.teardown(() => workers.close())

const golden = (async () => {
  const trees = await makeGoldenTrees(join(await tempDir(t), 'golden'))
  const nars: [string, Buffer][] = []
  for (const [name, path] of Object.entries(trees)) nars.push([name, (await narOf(path)).bytes])
  // A real tree of many files of every size: this repository's sources.
  nars.push(['src', (await narOf(join(import.meta.dirname, '../../../src'))).bytes])
  return nars
})()

t.test('the worker yields exactly what the in-thread producer yields', async (t) => {
  for (const [name, nar] of await golden) {
    for (const method of METHODS) {
      // The 5 MB of random bytes only where compressing and decoding them is quick.
      if (nar.length > 1024 * 1024 && (method === 'xz' || method === 'bzip2')) continue
      const body = await compress(nar, method)
      for (const chunkSizes of [DEFAULT_CHUNK_SIZES, SMALL_CHUNKS]) {
        const what = `${name}, ${method}, chunks of ${chunkSizes.avg}`
        const sizes = [1, 4096, 65536, 300_000]
        const inThread = await outcome(parseNarEvents(pieces(body, sizes), { method, chunkSizes }))
        const inWorker = await outcome(workers.parse(pieces(body, sizes), { method, chunkSizes }))
        t.equal(inThread.error, undefined, `${what}: parsed`)
        t.equal(inWorker.events.length, inThread.events.length, `${what}: as many events`)
        t.ok(inWorker.events.every((line, index) => line === inThread.events[index]), `${what}: the same events`)
        t.equal(inWorker.events.at(-1), `done ${createHash('sha256').update(nar).digest('hex')} ${nar.length}`)
      }
    }
  }
})

t.test('malformed input: the same typed errors, after the same events', async (t) => {
  const nar = (await golden).find(([name]) => name === 'mixed')?.[1] as Buffer
  const cases: [string, Buffer, (typeof METHODS)[number], number?][] = []
  for (const cut of [0, 1, 8, 15, 64, 100, 200, nar.length >> 1, nar.length - 8, nar.length - 1]) cases.push([`cut at ${cut}`, nar.subarray(0, cut), 'none'])
  for (const at of [0, 20, 40, 56, 100, 150, 300, 400]) {
    const flipped = Buffer.from(nar)
    flipped[at] = (flipped[at] as number) ^ 0x21
    cases.push([`byte ${at} flipped`, flipped, 'none'])
  }
  cases.push(['trailing bytes', Buffer.concat([nar, Buffer.alloc(8)]), 'none'])
  cases.push(['over maxNarSize', nar, 'none', nar.length - 1])
  for (const method of ['xz', 'zstd', 'bzip2'] as const) {
    const compressed = await compress(nar, method)
    cases.push([`${method} garbage`, Buffer.from('this is not compressed at all'), method])
    cases.push([`${method} missing its last byte`, compressed.subarray(0, -1), method])
    cases.push([`${method} cut in half`, compressed.subarray(0, compressed.length >> 1), method])
    cases.push([`${method} over maxNarSize`, compressed, method, 1000])
  }
  for (const [what, body, method, maxNarSize] of cases) {
    const inThread = await outcome(parseNarEvents(pieces(body, [7, 64]), { method, maxNarSize }))
    const inWorker = await outcome(workers.parse(pieces(body, [7, 64]), { method, maxNarSize }))
    t.not(inThread.error, undefined, `${what}: refused`)
    t.equal(inWorker.error, inThread.error, `${what}: ${inThread.error}`)
    t.strictSame(inWorker.events, inThread.events, `${what}: the same events first`)
  }
  const error = await (async () => {
    try {
      for await (const event of workers.parse(pieces(nar.subarray(0, 100)), { method: 'none' })) void event
    } catch (error) {
      return error
    }
  })()
  t.match(error, { name: 'NarError', code: 'BAD_NAR', status: 400, reason: 'truncated', offset: 100 }, 'a NarError, with its reason and offset')
  t.ok(error instanceof NarError, 'of the class NarError')
})

t.test('20 concurrent sessions on one worker all progress and complete', async (t) => {
  const single = new IngestWorkers({ size: 1 })
  t.teardown(() => single.close())
  const nars = await golden
  const uploads = await Promise.all(
    Array.from({ length: 20 }, async (_, index) => {
      const [name, nar] = nars[index % nars.length] as [string, Buffer]
      const method = METHODS[index % METHODS.length] as (typeof METHODS)[number]
      return { name, nar, method, body: await compress(nar, method) }
    }),
  )
  const sessions = uploads.map(({ body, method }) => single.parse(pieces(body, [16384]), { method, chunkSizes: SMALL_CHUNKS }))
  // Every session yields its first event while none has been read further: none waits for another.
  const firsts = await Promise.all(sessions.map((session) => session.next()))
  t.ok(firsts.every((first) => first.done === false), 'all 20 started')

  const results = await Promise.all(
    sessions.map(async (session, index) => {
      const first = firsts[index]?.value as IngestEvent
      const rest = await outcome(session)
      return [describe(first), ...rest.events]
    }),
  )
  for (const [index, { name, nar, method, body }] of uploads.entries()) {
    const expected = await outcome(parseNarEvents(pieces(body), { method, chunkSizes: SMALL_CHUNKS }))
    t.strictSame(results[index], expected.events, `session ${index} (${name}, ${method}) complete and identical`)
    t.equal(results[index]?.at(-1), `done ${createHash('sha256').update(nar).digest('hex')} ${nar.length}`)
  }
  t.equal(single.budget.inUse, 0, 'every byte of budget given back')
})

t.test('20 uploads too large to finish ahead of their consumers are all open on one worker at once', async (t) => {
  const single = new IngestWorkers({ size: 1 })
  t.teardown(() => single.close())
  const size = 24 * 1024 * 1024
  const hashes = Array.from({ length: 20 }, () => createHash('sha256'))
  const reads = hashes.map(() => ({ bytes: 0 }))
  const sessions = hashes.map((sha, index) =>
    single.parse(
      (async function* () {
        for await (const piece of lazyFileNar(size + index, 'random', reads[index])) {
          sha.update(piece)
          yield piece
        }
      })(),
      { method: 'none' },
    ),
  )
  const firsts = await Promise.all(sessions.map((session) => session.next()))
  t.ok(firsts.every((first) => first.done === false), 'all 20 started')
  const [stats] = await untilStats(single, ([stats]) => stats?.waitingForCredit === 20)
  t.equal(stats?.sessions, 20, 'all 20 open in the one worker, each waiting for its consumer')
  const results = await Promise.all(sessions.map((session) => outcome(session)))
  for (const [index, result] of results.entries()) {
    t.equal(result.error, undefined)
    t.equal(result.events.at(-1), `done ${hashes[index]?.digest('hex')} ${reads[index]?.bytes}`, `session ${index} complete`)
  }
  t.equal(single.budget.inUse, 0, 'every byte of budget given back')
})

import { createHash } from 'node:crypto'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { ByteBudget } from '../../../src/budget.ts'
import type { IngestEvent } from '../../../src/ingest/events.ts'
import { parseNarEvents } from '../../../src/ingest/parse/parse.ts'
import { IngestWorkers } from '../../../src/ingest/parse/workers.ts'
import { narOf } from '../../helpers/nar-samples.ts'
import { makeGoldenTrees, tempDir } from '../../helpers/trees.ts'
import { compress, lazyFileNar, outcome, pieces, sum, untilStats } from './helpers.ts'

const MiB = 1024 * 1024
const decodedBytes = async (pool: IngestWorkers): Promise<number> => sum((await pool.stats()).map((stats) => stats.decodedBytes))

/** Parses a small NAR to its end through `pool`: the worker has been through many turns of its event loop since. */
async function roundTrip(pool: IngestWorkers): Promise<number> {
  const nar = await compress(lazyFileNar(3 * MiB + 3, 'random'), 'none')
  const result = await outcome(pool.parse(pieces(nar), { method: 'none' }))
  if (result.error) throw new Error(result.error)
  return nar.length
}

/** Proves work stopped: nothing left open, and nothing decoded since but the round trip's own bytes. */
async function assertStopped(t: Test, pool: IngestWorkers, what: string, totalSize: number): Promise<void> {
  await untilStats(pool, (stats) => sum(stats.map((worker) => worker.sessions)) === 0)
  const stopped = await decodedBytes(pool)
  t.ok(stopped < Math.min(32 * MiB, totalSize / 4), `${what}: ${(stopped / MiB).toFixed(1)} MiB of ${totalSize / MiB} MiB decoded`)
  const extra = await roundTrip(pool)
  t.equal(await decodedBytes(pool), stopped + extra, `${what}: nothing more was decoded since`)
}

/** Zeros compressed: every chunk the same (as when every chunk would be a duplicate). */
async function bomb(method: 'none' | 'xz' | 'zstd' | 'bzip2', size: number): Promise<AsyncIterable<Uint8Array>> {
  if (method === 'none') return lazyFileNar(size, 'zeros', undefined, MiB)
  return pieces(await compress(lazyFileNar(size, 'zeros', undefined, MiB), method), [4096])
}

const BOMB = 512 * MiB
/** xz and bzip2 take a while to compress even zeros: smaller bombs for them. */
const bombSize = (method: string): number => (method === 'xz' || method === 'bzip2' ? 128 * MiB : BOMB)

t.test('stopping the consumer (return) drops the session at once, in the middle of a decompression bomb', async (t) => {
  for (const method of ['none', 'zstd', 'xz', 'bzip2'] as const) {
    const pool = new IngestWorkers({ size: 1 })
    t.teardown(() => pool.close())
    const events = pool.parse(await bomb(method, bombSize(method)), { method })
    let chunks = 0
    for await (const event of events) if ((event.type === 'chunk' || event.type === 'repeat') && ++chunks === 8) break
    await assertStopped(t, pool, `${method}, consumer stopped`, bombSize(method))
  }
})

t.test('an aborted signal fails the session with ABORTED and stops the work, with a consumer that pulls as fast as it can', async (t) => {
  for (const method of ['none', 'zstd'] as const) {
    const pool = new IngestWorkers({ size: 1 })
    t.teardown(() => pool.close())
    const controller = new AbortController()
    let chunks = 0
    const result = await outcome(
      (async function* () {
        for await (const event of pool.parse(await bomb(method, BOMB), { method, signal: controller.signal })) {
          if ((event.type === 'chunk' || event.type === 'repeat') && ++chunks === 8) controller.abort()
          yield event
        }
      })(),
    )
    t.equal(result.error, 'NixcasError ABORTED 499: the upload was aborted', `${method}: the consumer sees ABORTED`)
    await assertStopped(t, pool, `${method}, signal aborted`, BOMB)
  }
})

t.test('abort while the worker waits for its consumer, and while the main thread waits for the body', async (t) => {
  const pool = new IngestWorkers({ size: 1, sessionOutputBytes: MiB })
  t.teardown(() => pool.close())
  const controller = new AbortController()
  const events = pool.parse(lazyFileNar(BOMB, 'random'), { method: 'none', signal: controller.signal })
  await events.next()
  await untilStats(pool, (stats) => stats[0]?.waitingForCredit === 1)
  controller.abort()
  await t.rejects(events.next(), { code: 'ABORTED' })
  await assertStopped(t, pool, 'waiting for credit', BOMB)

  // A client that sends 1 MiB of its NAR and then nothing: the worker has decoded all of it
  // and waits for input, the main thread waits for the body.
  let release: (() => void) | undefined
  async function* silentClient(): AsyncGenerator<Uint8Array> {
    yield* pieces((await compress(lazyFileNar(4 * MiB, 'random'), 'none')).subarray(0, MiB))
    await new Promise<void>((resolve) => (release = resolve))
  }
  const before = await decodedBytes(pool)
  const second = new AbortController()
  const stalled = pool.parse(silentClient(), { method: 'none', signal: second.signal })
  t.equal(((await stalled.next()).value as IngestEvent).type, 'file')
  const pending = stalled.next()
  await untilStats(pool, ([stats]) => stats?.decodedBytes === before + MiB)
  second.abort()
  await t.rejects(pending, { code: 'ABORTED' }, 'the consumer waiting for an event sees ABORTED')
  await untilStats(pool, ([stats]) => stats?.sessions === 0)
  t.equal(await decodedBytes(pool), before + MiB, 'the worker dropped the session')
  release?.()
})

t.test('memory: a session whose consumer does not pull holds at most its bounds', async (t) => {
  const budget = new ByteBudget(256 * MiB)
  const input = 256 * 1024
  const output = MiB
  const pool = new IngestWorkers({ size: 1, budget, sessionInputBytes: input, sessionOutputBytes: output })
  t.teardown(() => pool.close())
  const size = 64 * MiB
  const read = { bytes: 0 }
  const sha = createHash('sha256')
  const body = (async function* () {
    for await (const piece of lazyFileNar(size, 'random', read)) {
      sha.update(piece)
      yield piece
    }
  })()
  const events = pool.parse(body, { method: 'none' })
  const first = await events.next()
  t.equal((first.value as IngestEvent).type, 'file')
  const [stats] = await untilStats(pool, (stats) => stats[0]?.waitingForCredit === 1)
  // Read ahead: the credit, the chunker's window (one max chunk), one chunk past the credit, the input bound.
  const bound = output + 2 * MiB + input + 64 * 1024
  t.ok(read.bytes <= bound, `the body was read ${(read.bytes / MiB).toFixed(2)} MiB ahead of the consumer (bound ${(bound / MiB).toFixed(2)} MiB)`)
  t.ok((stats?.queuedInputBytes ?? Infinity) <= input, `input queued in the worker: ${stats?.queuedInputBytes} bytes`)
  t.ok(budget.peak <= output + input + 64 * 1024, `budget peak ${budget.peak}`)
  t.ok((stats?.decodedBytes ?? Infinity) < size / 8, 'the worker stopped parsing')

  const rest = await outcome(events)
  t.equal(rest.error, undefined)
  t.equal(rest.events.at(-1), `done ${sha.digest('hex')} ${read.bytes}`, 'then it completes')
  t.equal(budget.inUse, 0, 'and gives every byte back')
})

t.test('memory over sessions: a shared budget bounds them together, and none starves', async (t) => {
  const capacity = 2 * MiB
  const budget = new ByteBudget(capacity)
  const pool = new IngestWorkers({ size: 1, budget, sessionInputBytes: 256 * 1024, sessionOutputBytes: MiB })
  t.teardown(() => pool.close())
  const count = 6
  const sessions = Array.from({ length: count }, () => pool.parse(lazyFileNar(32 * MiB, 'random'), { method: 'none' }))
  const firsts = await Promise.all(sessions.map((session) => session.next()))
  t.ok(firsts.every((first) => first.done === false), 'every session gets going')
  // Each session may overshoot by one piece each way: a batch of credit and one input chunk.
  const overshoot = count * (256 * 1024 + 64 * 1024)
  await untilStats(pool, (stats) => stats[0]?.waitingForCredit === count)
  t.ok(budget.peak <= capacity + overshoot, `budget peak ${(budget.peak / MiB).toFixed(2)} MiB for a capacity of ${capacity / MiB} MiB`)
  const results = await Promise.all(sessions.map((session) => outcome(session)))
  t.ok(results.every((result) => result.error === undefined && result.events.at(-1)?.startsWith('done ')), 'all complete')
  t.equal(budget.inUse, 0)
})

t.test('tiny bounds, a tiny budget, body pieces larger than the input bound: every session still completes, identically', async (t) => {
  const budget = new ByteBudget(128 * 1024)
  const pool = new IngestWorkers({ size: 1, budget, sessionInputBytes: 16 * 1024, sessionOutputBytes: 64 * 1024 })
  t.teardown(() => pool.close())
  const trees = await makeGoldenTrees(join(await tempDir(t), 'golden'))
  const nars = await Promise.all(['many-small', 'mixed', 'random-5mb', 'odd-names'].map(async (name) => (await narOf(trees[name] as string)).bytes))
  const uploads = await Promise.all(
    Array.from({ length: 8 }, async (_, index) => {
      const method = (['none', 'zstd'] as const)[index % 2] as 'none' | 'zstd'
      return { method, body: await compress(nars[index % nars.length] as Buffer, method) }
    }),
  )
  const sizes = [1, 100_000, 7, 40_000, 3000]
  const results = await Promise.all(uploads.map(({ body, method }) => outcome(pool.parse(pieces(body, sizes), { method, chunkSizes: { min: 256, avg: 1024, max: 4096 } }))))
  for (const [index, { body, method }] of uploads.entries()) {
    const expected = await outcome(parseNarEvents(pieces(body), { method, chunkSizes: { min: 256, avg: 1024, max: 4096 } }))
    t.equal(results[index]?.error, undefined, `upload ${index}: no error`)
    t.ok(expected.events.length === results[index]?.events.length && expected.events.every((line, at) => line === results[index]?.events[at]), `upload ${index} (${method}): the same events`)
  }
  t.equal(budget.inUse, 0, 'every byte of budget given back')
})

t.test('a worker that dies fails its sessions with INTERNAL and is replaced; the process lives on', async (t) => {
  const pool = new IngestWorkers({ size: 1 })
  t.teardown(() => pool.close())
  const events = pool.parse(lazyFileNar(BOMB, 'random'), { method: 'none' })
  await events.next()
  const [thread] = pool.threads()
  const threadId = thread?.threadId
  await thread?.terminate()
  await t.rejects(events.next(), { code: 'INTERNAL', status: 500, message: /ingest worker exited/ })
  t.equal((await roundTrip(pool)) > 0, true, 'the next upload works')
  t.not(pool.threads()[0]?.threadId, threadId, 'on a new worker')

  // A worker that cannot even start (its heap is too small to load the code).
  const starved = new IngestWorkers({ size: 1, maxHeapMb: 1 })
  t.teardown(() => starved.close())
  const failed = await outcome(starved.parse(pieces(Buffer.from('nix-archive-1')), { method: 'none' }))
  t.match(failed.error, /^NixcasError INTERNAL 500: the ingest worker (failed|exited)/, String(failed.error))
  t.strictSame(failed.events, [])
})

t.test('after close, parse refuses with INTERNAL', async (t) => {
  const pool = new IngestWorkers({ size: 1 })
  const events = pool.parse(lazyFileNar(BOMB, 'random'), { method: 'none' })
  await events.next()
  await pool.close()
  await t.rejects(events.next(), { code: 'INTERNAL' })
  await t.rejects(pool.parse(pieces(Buffer.alloc(8)), { method: 'none' }).next(), { code: 'INTERNAL', message: 'the ingest workers are closed' })
})

import t from 'tap'
import { ByteBudget } from '../../src/budget.ts'
import { Flight } from '../../src/cache/upstream/flight.ts'
import type { NarRange } from '../../src/render/render.ts'
import { collect } from '../helpers/streams.ts'

const PIECE = 10

/**
 * A download whose pieces arrive only when the test releases them, an ingest that takes
 * everything and then waits for the test to say whether the NAR checked out, and a
 * castore that serves the whole NAR once stored.
 */
function harness(pieces: number, windowBytes = 1_000) {
  const nar = Buffer.from(Array.from({ length: pieces * PIECE }, (_, index) => index % 251))
  const budget = new ByteBudget(1024 * 1024)
  let release: () => void = () => undefined
  let gate = new Promise<void>((resolve) => (release = resolve))
  let verdict: (ok: boolean) => void = () => undefined
  const verdictGiven = new Promise<boolean>((resolve) => (verdict = resolve))
  const state = { sent: 0, sourceStopped: false, consumed: 0, local: [] as NarRange[] }
  const flight = new Flight({
    size: nar.length,
    windowBytes,
    budget,
    // Like the real one (fetch and decode), the source stops when its signal aborts.
    async *source(abort) {
      try {
        for (let index = 0; index < pieces; index++) {
          await Promise.race([gate, new Promise((_, reject) => abort.addEventListener('abort', () => reject(abort.reason as Error), { once: true }))])
          state.sent++
          yield nar.subarray(index * PIECE, (index + 1) * PIECE)
        }
      } finally {
        state.sourceStopped = true
      }
    },
    async consume(bytes) {
      for await (const piece of bytes) state.consumed += piece.length
      if (!(await verdictGiven)) throw new Error('NarHash mismatch')
    },
    async *local(range) {
      state.local.push(range)
      yield nar.subarray(range.start, range.end)
    },
  })
  const step = async (): Promise<void> => {
    release()
    gate = new Promise<void>((resolve) => (release = resolve))
    await new Promise((resolve) => setImmediate(resolve))
  }
  const flowAll = (): void => {
    const pump = (): void => {
      release()
      if (state.sent < pieces) setImmediate(pump)
    }
    pump()
  }
  return { nar, budget, flight, state, step, flowAll, verdict }
}

const whole = (nar: Buffer): NarRange => ({ start: 0, end: nar.length })
const signal = (): AbortSignal => new AbortController().signal

t.test('readers share one download; the last byte waits until the NAR checked out', async (t) => {
  const h = harness(5)
  const readers = [h.flight.read(whole(h.nar), signal()), h.flight.read(whole(h.nar), signal())]
  const got = readers.map((reader) => collect(reader))
  h.flowAll()
  while (h.state.consumed < h.nar.length) await new Promise((resolve) => setImmediate(resolve))
  await new Promise((resolve) => setTimeout(resolve, 20))
  let settledEarly = false
  void Promise.race(got).then(() => (settledEarly = true))
  await new Promise((resolve) => setImmediate(resolve))
  t.notOk(settledEarly, 'no reader finished before the verdict')
  h.verdict(true)
  for (const body of await Promise.all(got)) t.ok(body.equals(h.nar), 'whole and identical')
  await h.flight.settled
  t.equal(h.budget.inUse, 0, 'the window is given back')
})

t.test('a client that leaves does not stop the download others read', async (t) => {
  const h = harness(5)
  const leaving = h.flight.read(whole(h.nar), signal())
  const staying = collect(h.flight.read(whole(h.nar), signal()))
  const first = leaving.next()
  await h.step()
  t.equal(((await first).value as Uint8Array | undefined)?.length, PIECE)
  await leaving.return(undefined)
  h.flowAll()
  h.verdict(true)
  t.ok((await staying).equals(h.nar))
  await t.resolves(h.flight.settled)
  t.notOk(h.flight.dropped)
})

t.test('when the last client leaves before the end, the download is dropped', async (t) => {
  const h = harness(5)
  const reader = h.flight.read(whole(h.nar), signal())
  const first = reader.next()
  await h.step()
  await first
  await reader.return(undefined)
  await t.rejects(h.flight.settled, 'nothing is stored')
  t.ok(h.flight.dropped)
  t.ok(h.state.sourceStopped, 'the upstream download stopped')
  t.ok(h.state.sent < 5, 'before all of it arrived')
  t.equal(h.budget.inUse, 0)
})

t.test('a reader the window left behind is served from the castore once stored', async (t) => {
  const h = harness(6, 2 * PIECE)
  const early = collect(h.flight.read(whole(h.nar), signal()))
  for (let index = 0; index < 4; index++) await h.step()
  const late = collect(h.flight.read(whole(h.nar), signal()))
  h.flowAll()
  h.verdict(true)
  t.ok((await early).equals(h.nar), 'the reader that kept up read the window')
  t.ok((await late).equals(h.nar), 'the late joiner got the whole NAR')
  t.same(h.state.local, [{ start: 0, end: h.nar.length }], 'from the castore, from its own offset')
})

t.test('a NAR that does not check out fails every reader short of its end', async (t) => {
  const h = harness(3)
  const readers = [collect(h.flight.read(whole(h.nar), signal())), collect(h.flight.read({ start: 5, end: h.nar.length }, signal()))]
  h.flowAll()
  h.verdict(false)
  for (const reader of readers) await t.rejects(reader, /NarHash mismatch/)
  await t.rejects(h.flight.settled)
  t.notOk(h.flight.dropped)
  t.equal(h.budget.inUse, 0)
})

t.test('a range that was answered leaves the download running to the end', async (t) => {
  const h = harness(4)
  const range = collect(h.flight.read({ start: 3, end: 15 }, signal()))
  h.flowAll()
  t.ok((await range).equals(h.nar.subarray(3, 15)))
  h.verdict(true)
  await t.resolves(h.flight.settled)
  t.equal(h.state.consumed, h.nar.length)
})

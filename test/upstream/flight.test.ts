import { readdir } from 'node:fs/promises'
import t, { type Test } from 'tap'
import { ByteBudget } from '../../src/budget.ts'
import { Flight } from '../../src/cache/upstream/flight.ts'
import { Window, type Keep } from '../../src/cache/upstream/keep.ts'
import { Spool } from '../../src/cache/upstream/spool.ts'
import type { NarRange } from '../../src/render/render.ts'
import { collect } from '../helpers/streams.ts'
import { tempDir } from '../helpers/trees.ts'

const PIECE = 10
const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

interface Gate {
  promise: Promise<boolean>
  open(ok: boolean): void
}

function gate(): Gate {
  let open: (ok: boolean) => void = () => undefined
  const promise = new Promise<boolean>((resolve) => (open = resolve))
  return { promise, open }
}

/**
 * A download whose pieces arrive only when the test releases them and whose end waits for
 * the test's verdict on the NarHash (as the real checked source does); an ingest that takes
 * everything and then waits for the test to say it stored the NAR; and a castore that
 * serves the whole NAR once stored. Kept in a window, or in a real spool file.
 */
async function harness(t: Test, pieces: number, keepIn: 'window' | 'spool', windowBytes = 1_000, { transferring = false } = {}) {
  const nar = Buffer.from(Array.from({ length: pieces * PIECE }, (_, index) => index % 251))
  const budget = new ByteBudget(1024 * 1024)
  const spool = keepIn === 'spool' ? await Spool.open(await tempDir(t), 1024 * 1024) : undefined
  const keep: Keep = spool ? ((await spool.file(nar.length)) as Keep) : new Window(windowBytes, budget)
  let release: () => void = () => undefined
  let next = new Promise<void>((resolve) => (release = resolve))
  const verdict = gate()
  const ingested = gate()
  ingested.open(true)
  const state = { sent: 0, sourceStopped: false, consumed: 0, local: [] as NarRange[], ingested }
  const flight = new Flight({
    size: nar.length,
    keep,
    // Like the real one (fetch and decode), the source stops when its signal aborts.
    async *source(abort) {
      const aborted = new Promise((_, reject) => abort.addEventListener('abort', () => reject(abort.reason as Error), { once: true }))
      aborted.catch(() => undefined)
      try {
        for (let index = 0; index < pieces; index++) {
          await Promise.race([next, aborted])
          state.sent++
          const piece = nar.subarray(index * PIECE, (index + 1) * PIECE)
          // A socket's or a decoder's pieces are buffers of their own.
          yield transferring ? new Uint8Array(piece) : piece
        }
        if (!(await Promise.race([verdict.promise, aborted]))) throw new Error('NarHash mismatch')
      } finally {
        state.sourceStopped = true
      }
    },
    async consume(bytes) {
      for await (const piece of bytes) {
        state.consumed += piece.length
        // As the ingest does: a piece that is a whole buffer of its own moves to a worker thread.
        if (transferring && piece.byteOffset === 0 && piece.byteLength === piece.buffer.byteLength) structuredClone(piece.buffer, { transfer: [piece.buffer as ArrayBuffer] })
      }
      if (!(await state.ingested.promise)) throw new Error('the store failed')
    },
    async *local(range) {
      state.local.push(range)
      yield nar.subarray(range.start, range.end)
    },
  })
  const step = async (): Promise<void> => {
    release()
    next = new Promise<void>((resolve) => (release = resolve))
    await tick()
  }
  const flowAll = (): void => {
    const pump = (): void => {
      release()
      if (state.sent < pieces) setImmediate(pump)
    }
    pump()
  }
  /** The ingest waits for the test from now on. */
  const holdIngest = (): Gate => (state.ingested = gate())
  return { nar, budget, spool, flight, state, step, flowAll, verdict, holdIngest }
}

const whole = (nar: Buffer): NarRange => ({ start: 0, end: nar.length })
const signal = (): AbortSignal => new AbortController().signal

for (const keepIn of ['window', 'spool'] as const) {
  t.test(`${keepIn}: readers share one download; the last byte waits until the download checked out`, async (t) => {
    const h = await harness(t, 5, keepIn)
    const got = [h.flight.read(whole(h.nar), signal()), h.flight.read(whole(h.nar), signal())].map((reader) => collect(reader))
    h.flowAll()
    while (h.state.sent < 5) await tick()
    for (let index = 0; index < 20; index++) await tick()
    let settledEarly = false
    void Promise.race(got).then(() => (settledEarly = true))
    await tick()
    t.notOk(settledEarly, 'no reader finished before the verdict')
    h.verdict.open(true)
    for (const body of await Promise.all(got)) t.ok(body.equals(h.nar), 'whole and identical')
    await h.flight.settled
    t.equal(h.budget.inUse, 0, 'the window is given back')
    t.equal(h.spool?.budget.inUse ?? 0, 0, 'the spool is given back')
  })

  t.test(`${keepIn}: a client that leaves does not stop the download others read`, async (t) => {
    const h = await harness(t, 5, keepIn)
    const leaving = h.flight.read(whole(h.nar), signal())
    const staying = collect(h.flight.read(whole(h.nar), signal()))
    const first = leaving.next()
    await h.step()
    t.equal(((await first).value as Uint8Array | undefined)?.length, PIECE)
    await leaving.return(undefined)
    h.flowAll()
    h.verdict.open(true)
    t.ok((await staying).equals(h.nar))
    await t.resolves(h.flight.settled)
    t.notOk(h.flight.dropped)
  })

  t.test(`${keepIn}: when the last client leaves before the end, the download is dropped`, async (t) => {
    const h = await harness(t, 5, keepIn)
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
    t.equal(h.spool?.budget.inUse ?? 0, 0)
  })

  t.test(`${keepIn}: a NAR that does not check out fails every reader short of its end`, async (t) => {
    const h = await harness(t, 3, keepIn)
    // Settled together: a reader failing while the test awaits another is no unhandled rejection.
    const readers = Promise.allSettled([collect(h.flight.read(whole(h.nar), signal())), collect(h.flight.read({ start: 5, end: h.nar.length }, signal()))])
    h.flowAll()
    h.verdict.open(false)
    for (const reader of await readers) t.match(reader, { status: 'rejected', reason: { message: 'NarHash mismatch' } })
    await t.rejects(h.flight.settled)
    t.notOk(h.flight.dropped)
    t.equal(h.budget.inUse, 0)
    t.equal(h.spool?.budget.inUse ?? 0, 0)
  })

  t.test(`${keepIn}: a range that was answered leaves the download running to the end`, async (t) => {
    const h = await harness(t, 4, keepIn)
    const range = collect(h.flight.read({ start: 3, end: 15 }, signal()))
    h.flowAll()
    t.ok((await range).equals(h.nar.subarray(3, 15)))
    h.verdict.open(true)
    await t.resolves(h.flight.settled)
    t.equal(h.state.consumed, h.nar.length)
  })
}

t.test('window: a reader the window left behind is served from the castore once stored', async (t) => {
  const h = await harness(t, 6, 'window', 2 * PIECE)
  const early = collect(h.flight.read(whole(h.nar), signal()))
  for (let index = 0; index < 4; index++) await h.step()
  const late = collect(h.flight.read(whole(h.nar), signal()))
  h.flowAll()
  h.verdict.open(true)
  t.ok((await early).equals(h.nar), 'the reader that kept up read the window')
  t.ok((await late).equals(h.nar), 'the late joiner got the whole NAR')
  t.same(h.state.local, [{ start: 0, end: h.nar.length }], 'from the castore, from its own offset')
})

for (const keepIn of ['window', 'spool'] as const) {
  t.test(`${keepIn}: an ingest that takes over the buffers it is handed leaves readers behind it their bytes`, async (t) => {
    const h = await harness(t, 8, keepIn, 1_000, { transferring: true })
    for (let index = 0; index < 4; index++) await h.step()
    t.ok(h.state.consumed > 0 || keepIn === 'spool', 'the ingest has taken pieces')
    // Starts after the ingest took the first pieces (a window still holds them all).
    const late = collect(h.flight.read(whole(h.nar), signal()))
    h.flowAll()
    h.verdict.open(true)
    t.ok((await late).equals(h.nar), 'the reader gets every byte')
    await h.flight.settled
  })
}

t.test('spool: clients get the whole NAR while the ingest is still storing it; late joiners read the spool', async (t) => {
  const h = await harness(t, 6, 'spool')
  const ingest = h.holdIngest()
  const early = collect(h.flight.read(whole(h.nar), signal()))
  for (let index = 0; index < 4; index++) await h.step()
  const late = collect(h.flight.read({ start: 3, end: h.nar.length }, signal()))
  h.flowAll()
  h.verdict.open(true)
  t.ok((await early).equals(h.nar), 'whole, before the ingest finished')
  t.ok((await late).equals(h.nar.subarray(3)), 'the late joiner too, from its offset')
  t.same(h.state.local, [], 'nothing was read from the castore')
  const after = collect(h.flight.read(whole(h.nar), signal()))
  t.ok((await after).equals(h.nar), 'a reader arriving after the download is served from the spool')
  t.equal(h.spool?.budget.inUse, h.nar.length, 'the spool is held until the ingest ends')
  ingest.open(true)
  await t.resolves(h.flight.settled)
  t.equal(h.spool?.budget.inUse, 0)
  t.same(await readdir(h.spool?.dir ?? ''), [], 'no spool file is left')
})

t.test('spool: the download does not wait for the ingest; once it arrived, the ingest finishes with nobody reading', async (t) => {
  const h = await harness(t, 8, 'spool')
  const ingest = h.holdIngest()
  const reader = h.flight.read(whole(h.nar), signal())
  const first = reader.next()
  h.flowAll()
  await first
  h.verdict.open(true)
  while (h.state.consumed < h.nar.length) await tick()
  t.equal(h.state.sent, 8, 'every piece arrived')
  await reader.return(undefined)
  ingest.open(true)
  await t.resolves(h.flight.settled, 'stored though its client left')
  t.notOk(h.flight.dropped)
})

t.test('spool: an ingest that fails after the download checked out still lets readers finish', async (t) => {
  const h = await harness(t, 4, 'spool')
  const ingest = h.holdIngest()
  const reader = collect(h.flight.read(whole(h.nar), signal()))
  h.flowAll()
  h.verdict.open(true)
  while (h.state.consumed < h.nar.length) await tick()
  ingest.open(false)
  await t.rejects(h.flight.settled, /the store failed/)
  t.ok((await reader).equals(h.nar), 'the checked bytes were served')
  t.equal(h.spool?.budget.inUse, 0)
})

t.test('a spool without room for a NAR gives no file; leftovers of dead processes are removed at start', async (t) => {
  const dir = await tempDir(t)
  const spool = await Spool.open(dir, 100)
  t.equal(await spool.file(101), undefined, 'too large for the spool')
  const file = await spool.file(60)
  t.ok(file)
  t.equal(await spool.file(60), undefined, 'the first reservation holds the room')
  t.same(await readdir(dir), [], 'an open spool file is already unlinked')
  await file?.free()
  t.equal(spool.budget.inUse, 0)
  const { writeFile } = await import('node:fs/promises')
  // A pid above the kernel's maximum (2^22) never runs.
  await writeFile(`${dir}/${2 ** 22 + 1}-leftover.spool`, 'x')
  await writeFile(`${dir}/${process.pid}-live.spool`, 'x')
  await writeFile(`${dir}/unrelated`, 'x')
  await Spool.open(dir, 100)
  t.same((await readdir(dir)).sort(), [`${process.pid}-live.spool`, 'unrelated'], 'only the dead process\'s file is gone')
})

t.test('a spool file reads back every byte added, from the file, a write in progress and memory', async (t) => {
  const spool = await Spool.open(await tempDir(t), 8 * 1024 * 1024)
  const bytes = Buffer.from(Array.from({ length: 3.5 * 1024 * 1024 }, (_, index) => (index * 7) % 253))
  const file = (await spool.file(bytes.length)) as Keep
  const readAll = async (end: number, from = 0): Promise<Buffer> => {
    const parts: Uint8Array[] = []
    for (let offset = from; offset < end; ) {
      const part = await file.read(offset, end - offset)
      parts.push(Buffer.from(part))
      offset += part.length
    }
    return Buffer.concat(parts)
  }
  let added = 0
  const sizes = [65_536, 1, 300_000, 4_095, 1_048_576]
  for (let index = 0; added < bytes.length; index++) {
    const piece = bytes.subarray(added, added + (sizes[index % sizes.length] ?? 1))
    // Read while the add (maybe a write of a full buffer) is in progress, then after it.
    const adding = file.add(piece, signal())
    t.ok((await readAll(added)).equals(bytes.subarray(0, added)), `the first ${added} bytes, during an add`)
    await adding
    added += piece.length
  }
  t.ok((await readAll(bytes.length)).equals(bytes), 'everything')
  t.ok((await readAll(bytes.length, 1_500_000)).equals(bytes.subarray(1_500_000)), 'from an offset in the file')
  await t.rejects(file.add(Buffer.alloc(1), signal()), /was given more/, 'no more than its size')
  await file.free()
  t.equal(spool.budget.inUse, 0)
})

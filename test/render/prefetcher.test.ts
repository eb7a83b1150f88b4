import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { loadLayout } from '../../src/render/load.ts'
import type { layoutNar } from '../../src/render/layout.ts'
import { prefetch, PrefetchStats, type FetchJob } from '../../src/render/prefetcher.ts'
import { renderNar } from '../../src/render/render.ts'
import { Cas } from '../../src/cas/cas.ts'
import { MemoryStore } from '../../src/stores/memory.ts'
import { ingestPath } from '../helpers/cas.ts'
import { CountingStore } from '../helpers/stores.ts'
import { collect } from '../helpers/streams.ts'
import { tempDir } from '../helpers/trees.ts'

/**
 * A tree of ~4,000 small files, ingested into memory behind a store that counts and delays
 * reads. Each chunk gets a data pack of its own, so every file costs a read and the
 * prefetcher's window is what keeps round trips down.
 */
async function smallFilesTree(t: Test): Promise<{ cas: Cas; store: CountingStore; layout: ReturnType<typeof layoutNar>; expected: Buffer }> {
  const dir = await tempDir(t)
  for (let group = 0; group < 40; group++) {
    await mkdir(join(dir, `g${group}`))
    await Promise.all(Array.from({ length: 100 }, (_, index) => writeFile(join(dir, `g${group}`, `f${index}`), `file ${group}/${index}\n`.repeat(1 + (index % 50)))))
  }
  const store = new CountingStore(new MemoryStore('memory'))
  const cas = new Cas(store)
  const result = await ingestPath(cas, dir, { packSize: 1 })
  const layout = await loadLayout(cas, result.narHash)
  const expected = await collect(renderNar(cas, layout))
  return { cas, store, layout, expected }
}

t.test('a wide window turns thousands of round trips into a few', async (t) => {
  const { cas, store, layout, expected } = await smallFilesTree(t)
  // Round trips are counted, not timed; the delay only makes requests overlap as they would.
  store.delay = 1
  const wide = new PrefetchStats()
  const wideStart = store.counts.get
  t.ok((await collect(renderNar(cas, layout, undefined, { windowBytes: 8 * 1024 * 1024, maxRequests: 64, stats: wide }))).equals(expected))
  const chunks = store.counts.get - wideStart
  const narrow = new PrefetchStats()
  t.ok((await collect(renderNar(cas, layout, undefined, { windowBytes: 8 * 1024 * 1024, maxRequests: 1, stats: narrow }))).equals(expected))
  t.ok(chunks >= 3900, `${chunks} chunks fetched`)
  t.equal(narrow.roundTrips, chunks, 'with C=1 every chunk is a round trip the client waits for')
  const ratio = narrow.roundTrips / wide.roundTrips
  t.ok(ratio >= 20, `W=8 MiB, C=64 waited ${wide.roundTrips} round trips against ${narrow.roundTrips}: ${ratio.toFixed(1)}× fewer`)
  t.ok(wide.peakInFlight <= 64 && wide.peakInFlight > 32, `up to 64 requests in flight (peak ${wide.peakInFlight})`)
  t.equal(narrow.peakInFlight, 1)
})

t.test('buffered bytes never exceed the window', async (t) => {
  const { cas, layout, expected } = await smallFilesTree(t)
  for (const windowBytes of [4096, 64 * 1024, 1024 * 1024]) {
    const stats = new PrefetchStats()
    const out: Buffer[] = []
    for await (const chunk of renderNar(cas, layout, undefined, { windowBytes, maxRequests: 1000, stats })) {
      out.push(Buffer.from(chunk))
      if (out.length % 100 === 0) await new Promise((resolve) => setImmediate(resolve)) // a slow reader
    }
    t.ok(Buffer.concat(out).equals(expected))
    t.ok(stats.peakBuffered <= windowBytes, `W=${windowBytes}: peak ${stats.peakBuffered}`)
    t.equal(stats.buffered, 0, 'nothing left buffered')
  }
})

t.test('stopping mid-stream aborts every fetch and frees the window', async (t) => {
  const { cas, store, layout } = await smallFilesTree(t)
  store.delay = 50
  const readsBefore = store.counts.get
  const bytesBefore = store.bytesRead
  const stats = new PrefetchStats()
  let taken = 0
  for await (const chunk of renderNar(cas, layout, undefined, { windowBytes: 1024 * 1024, maxRequests: 32, stats })) {
    taken += chunk.length
    if (taken > 10_000) break
  }
  t.equal(stats.buffered, 0, 'buffers released at once')
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(store.inFlight, 0, 'no store request still running')
  t.equal(stats.inFlight, 0, 'no fetch pending')
  const reads = store.counts.get - readsBefore
  const fetched = store.bytesRead - bytesBefore
  t.ok(fetched <= taken + 1024 * 1024, `only what was taken and the window ahead were fetched (${fetched} bytes for ${taken} taken, W = 1 MiB)`)
  // The first piece out is a block of small files (512 KiB of them): about a thousand reads, of 4,000.
  t.ok(reads < 2000, `far from the whole tree (${reads} reads of 4,000)`)
})

t.test('an abort signal stops the stream; a failed fetch fails it', async (t) => {
  const controller = new AbortController()
  const jobs: FetchJob[] = Array.from({ length: 100 }, (_, index) => ({
    size: 10,
    fetch: (signal) => new Promise<Uint8Array>((resolve, reject) => {
      const timer = setTimeout(() => resolve(Buffer.from([index])), 5)
      signal.addEventListener('abort', () => { clearTimeout(timer); reject(new Error('aborted')) })
    }),
  }))
  const seen: number[] = []
  await t.rejects(
    (async () => {
      for await (const chunk of prefetch(jobs, { windowBytes: 100, maxRequests: 4, signal: controller.signal })) {
        seen.push(chunk[0] as number)
        if (seen.length === 3) controller.abort()
      }
    })(),
  )
  t.same(seen, [0, 1, 2], 'in order until aborted')
  const failing: FetchJob[] = [
    { size: 1, fetch: () => Promise.resolve(Buffer.from('a')) },
    { size: 1, fetch: () => Promise.reject(new Error('store down')) },
    { size: 1, fetch: () => Promise.resolve(Buffer.from('c')) },
  ]
  await t.rejects(collect(prefetch(failing, { windowBytes: 10, maxRequests: 3 })), { message: 'store down' }, 'never a silently short stream')
})

import { cp, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import fc from 'fast-check'
import t, { type Test } from 'tap'
import { loadLayout } from '../../src/render/load.ts'
import { RENDER_DEFAULTS, renderNar } from '../../src/render/render.ts'
import { BufferPool } from '../../src/buffer-pool.ts'
import { Cas } from '../../src/cas/cas.ts'
import { keys } from '../../src/cas/keys.ts'
import { MemoryStore } from '../../src/stores/memory.ts'
import { FsStore } from '../../src/stores/fs.ts'
import { decodeNixbase32 } from '../../src/nix/nixbase32.ts'
import type { NixHash } from '../../src/nix/hash.ts'
import { ingestPath, renderToBuffer } from '../helpers/cas.ts'
import { CountingStore } from '../helpers/stores.ts'
import { collect } from '../helpers/streams.ts'
import { makeGoldenTrees, tempDir } from '../helpers/trees.ts'

async function goldenCas(t: Test, extra: Record<string, Buffer> = {}) {
  const dir = await tempDir(t)
  await makeGoldenTrees(dir)
  const { randomBytes } = await import('node:crypto')
  await writeFile(join(dir, 'big'), randomBytes(3 * 1024 * 1024))
  for (const [name, bytes] of Object.entries(extra)) await writeFile(join(dir, name), bytes)
  const store = new CountingStore(new MemoryStore('memory'))
  const cas = new Cas(store)
  const result = await ingestPath(cas, dir)
  return { store, cas, result, nar: await renderToBuffer(cas, result) }
}

t.test('any range equals the same slice of the whole NAR', async (t) => {
  const { cas, result, nar } = await goldenCas(t)
  const layout = await loadLayout(cas, result.narHash)
  t.equal(layout.size, nar.length, 'the layout knows the size before reading')
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 0, max: nar.length }), fc.integer({ min: 0, max: 300_000 }), async (start, length) => {
      const end = Math.min(nar.length, start + length)
      const part = await collect(renderNar(cas, layout, { start, end }, { windowBytes: 1024 * 1024, maxRequests: 8 }))
      return part.equals(nar.subarray(start, end))
    }),
    { numRuns: 200 },
  )
  t.ok((await collect(renderNar(cas, layout, { start: nar.length - 1, end: nar.length }))).equals(nar.subarray(-1)), 'the last byte')
  t.throws(() => renderNar(cas, layout, { start: 0, end: nar.length + 1 }), { code: 'BAD_RANGE' })
})

t.test('from a trusted local store no read outgrows the plan, chunks of a MiB included', async (t) => {
  // 3 MiB of zeros cut at the largest chunk size (the gear hash of a constant never matches the mask).
  const { store, cas, result, nar } = await goldenCas(t, { zeros: Buffer.alloc(3 * 1024 * 1024) })
  const layout = await loadLayout(cas, result.narHash)
  const plan = RENDER_DEFAULTS.local.plan
  t.ok(layout.segments.some((segment) => segment.kind === 'file' && segment.chunks.some((chunk) => chunk.size > plan.maxRunBytes)), 'the tree has chunks larger than a read')
  store.largestRead = 0
  const pool = new BufferPool(64 * 1024 * 1024, { blockBytes: plan.maxRunBytes })
  const middle = { start: 12_345, end: nar.length - 54_321 }
  const pieces: Uint8Array[] = []
  for await (const piece of renderNar(cas, layout, middle, { pool })) pieces.push(piece)
  t.ok(Buffer.concat(pieces).equals(nar.subarray(middle.start, middle.end)), 'byte-identical')
  t.ok(store.largestRead > 0 && store.largestRead <= plan.maxRunBytes, `largest read ${store.largestRead} bytes`)
  for (const piece of pieces) pool.give(piece)
})

t.test('a store written before data packs renders as it did', async (t) => {
  const fixtures = new URL('../fixtures/', import.meta.url).pathname
  const { narHash } = JSON.parse(await readFile(join(fixtures, 'v1-store.json'), 'utf8')) as { narHash: string }
  const expected = await readFile(join(fixtures, 'v1-store.nar'))
  const root = join(await tempDir(t), 'store')
  await cp(join(fixtures, 'v1-store'), root, { recursive: true })
  const cas = new Cas(new FsStore('v1', { path: root }))
  const hash: NixHash = { algorithm: 'sha256', digest: decodeNixbase32(narHash, 32) }
  t.ok((await collect(renderNar(cas, await loadLayout(cas, hash)))).equals(expected), 'byte-identical, with its closure pack')
  await rm(join(root, 'packs'), { recursive: true })
  const layout = await loadLayout(cas, hash)
  t.ok((await collect(renderNar(cas, layout))).equals(expected), 'and without it, a tree level at a time')
  const middle = { start: 1000, end: expected.length - 1000 }
  t.ok((await collect(renderNar(cas, layout, middle))).equals(expected.subarray(middle.start, middle.end)), 'ranges too')
})

t.test('a missing or corrupt pack fails the render with a typed error', async (t) => {
  const { store, cas, result } = await goldenCas(t)
  const layout = await loadLayout(cas, result.narHash)
  const file = layout.segments.find((segment) => segment.kind === 'file' && segment.node.size > 1000)
  if (file?.kind !== 'file') throw new Error('no file in the golden tree')
  const location = file.chunks[0]?.location
  if (!location) throw new Error('no chunk location')
  const key = keys.dataPack(location.pack)
  const original = (await store.get(key)) as Buffer

  await store.delete(key)
  await t.rejects(collect(renderNar(cas, layout)), { code: 'MISSING_OBJECT' }, 'missing')

  const flipped = Buffer.from(original)
  flipped[location.offset] = (flipped[location.offset] as number) ^ 1
  await store.put(key, flipped)
  store.trusted = false
  const remote = new Cas(store)
  await t.rejects(collect(renderNar(remote, layout)), { code: 'CORRUPT_OBJECT', message: /does not match its digest/ }, 'corrupt, from an untrusted store')
  await store.put(key, original)
  t.ok(await collect(renderNar(remote, layout)), 'fine again once repaired')
})

t.test('a record that pairs genuine chunks in the wrong order is caught by the blob digest', async (t) => {
  const { store, cas, result } = await goldenCas(t)
  const layout = await loadLayout(cas, result.narHash)
  const big = layout.segments.find((segment) => segment.kind === 'file' && segment.chunks.length > 2)
  if (big?.kind !== 'file') throw new Error('no chunked file')
  // Two chunks of the same file swapped: every chunk is genuine, their order is not.
  const swapped = [big.chunks[1], big.chunks[0], ...big.chunks.slice(2)] as typeof big.chunks
  const tampered = { ...big, chunks: swapped }
  const fake = { ...layout, segments: layout.segments.map((segment) => (segment === big ? tampered : segment)) }
  store.trusted = false
  await t.rejects(collect(renderNar(new Cas(store), fake)), { code: 'CORRUPT_OBJECT', message: /blob .* does not match/ })
})

t.test('with a buffer pool, pieces given back at once are reused and the NAR stays byte-identical', async (t) => {
  const { cas, result, nar } = await goldenCas(t)
  const layout = await loadLayout(cas, result.narHash)
  const pool = new BufferPool(64 * 1024 * 1024)
  for (const range of [{ start: 0, end: nar.length }, { start: 1000, end: nar.length - 777 }]) {
    const out: Buffer[] = []
    for await (const piece of renderNar(cas, layout, range, { pool, windowBytes: 1024 * 1024 })) {
      out.push(Buffer.from(piece))
      pool.give(piece)
    }
    t.ok(Buffer.concat(out).equals(nar.subarray(range.start, range.end)), `range ${range.start}-${range.end}`)
  }
  // Pieces held back (a socket that is slow to take them) are never overwritten by a later read.
  const held: Uint8Array[] = []
  for await (const piece of renderNar(cas, layout, undefined, { pool, windowBytes: 1024 * 1024 })) held.push(piece)
  t.ok(Buffer.concat(held).equals(nar), 'pieces held to the end still hold the NAR')
  for (const piece of held) pool.give(piece)
})

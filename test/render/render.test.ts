import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import fc from 'fast-check'
import t, { type Test } from 'tap'
import { digestOf } from '../../src/castore/digest.ts'
import { encodeManifest } from '../../src/castore/manifest.ts'
import { loadClosure } from '../../src/render/closure.ts'
import { layoutNar } from '../../src/render/layout.ts'
import { renderNar } from '../../src/render/render.ts'
import { Cas } from '../../src/cas/cas.ts'
import { keys } from '../../src/cas/keys.ts'
import { MemoryStore } from '../../src/stores/memory.ts'
import { ingestPath, renderToBuffer } from '../helpers/cas.ts'
import { CountingStore } from '../helpers/stores.ts'
import { collect } from '../helpers/streams.ts'
import { makeGoldenTrees, tempDir } from '../helpers/trees.ts'

async function goldenCas(t: Test) {
  const dir = await tempDir(t)
  await makeGoldenTrees(dir)
  const { randomBytes } = await import('node:crypto')
  await writeFile(join(dir, 'big'), randomBytes(3 * 1024 * 1024))
  const store = new CountingStore(new MemoryStore('memory'))
  const cas = new Cas(store)
  const result = await ingestPath(cas, dir)
  return { store, cas, result, nar: await renderToBuffer(cas, result.root) }
}

t.test('any range equals the same slice of the whole NAR', async (t) => {
  const { cas, result, nar } = await goldenCas(t)
  const layout = layoutNar(result.root, await loadClosure(cas, result.root))
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

t.test('the closure costs one round trip with a pack, a few levels without', async (t) => {
  const { store, cas, result, nar } = await goldenCas(t)
  t.equal((await loadClosure(cas, result.root)).roundTrips, 1)
  if (result.root.type === 'symlink') throw new Error('unexpected root')
  await store.delete(keys.closurePack(result.root.digest))
  const closure = await loadClosure(cas, result.root)
  t.ok(closure.roundTrips > 2 && closure.roundTrips <= 24, `without the pack: ${closure.roundTrips} round trips, one per tree level`)
  t.ok((await collect(renderNar(cas, layoutNar(result.root, closure)))).equals(nar))
})

t.test('a missing or corrupt chunk fails the render with a typed error', async (t) => {
  const { store, cas, result } = await goldenCas(t)
  const layout = layoutNar(result.root, await loadClosure(cas, result.root))
  const file = layout.segments.find((segment) => segment.kind === 'file' && segment.node.size > 1000)
  if (file?.kind !== 'file') throw new Error('no file in the golden tree')
  const chunk = file.chunks[0]
  if (!chunk) throw new Error('no chunk')
  const key = keys.chunk(chunk.digest)
  const original = (await store.get(key)) as Buffer

  await store.delete(key)
  await t.rejects(collect(renderNar(cas, layout)), { code: 'MISSING_OBJECT' }, 'missing')

  const flipped = Buffer.from(original)
  flipped[0] = (flipped[0] as number) ^ 1
  await store.put(key, flipped)
  store.trusted = false
  const remote = new Cas(store)
  await t.rejects(collect(renderNar(remote, layout)), { code: 'CORRUPT_OBJECT', message: /does not match its digest/ }, 'corrupt, from an untrusted store')
  await store.put(key, original)
  t.ok(await collect(renderNar(remote, layout)), 'fine again once repaired')
})

t.test('a tampered manifest is caught by the blob digest', async (t) => {
  const { store, cas, result } = await goldenCas(t)
  const layout = layoutNar(result.root, await loadClosure(cas, result.root))
  const big = layout.segments.find((segment) => segment.kind === 'file' && segment.chunks.length > 2)
  if (big?.kind !== 'file') throw new Error('no chunked file')
  // Two chunks of the same file swapped: every chunk is genuine, their order is not.
  const swapped = [big.chunks[1], big.chunks[0], ...big.chunks.slice(2)] as typeof big.chunks
  const tampered = { ...big, chunks: swapped }
  const fake = { ...layout, segments: layout.segments.map((segment) => (segment === big ? tampered : segment)) }
  store.trusted = false
  await t.rejects(collect(renderNar(new Cas(store), fake)), { code: 'CORRUPT_OBJECT', message: /blob .* does not match/ })
  t.ok(encodeManifest(swapped).length > 0 && digestOf(Buffer.alloc(0)).length === 32)
})

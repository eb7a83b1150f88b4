import { randomBytes } from 'node:crypto'
import fc from 'fast-check'
import t from 'tap'
import { Chunker, DEFAULT_CHUNK_SIZES, checkChunkSizes, type ChunkSizes } from '../../src/castore/chunker.ts'
import { digestHex, digestOf } from '../../src/castore/digest.ts'
import { slices } from '../helpers/streams.ts'

const small: ChunkSizes = { min: 1024, avg: 4096, max: 16384 }

function chunk(data: Uint8Array, cuts: readonly number[], sizes = small): Buffer[] {
  const chunker = new Chunker(sizes)
  const out: Buffer[] = []
  for (const piece of slices(data, cuts)) for (const part of chunker.push(piece)) out.push(Buffer.from(part))
  for (const part of chunker.finish()) out.push(Buffer.from(part))
  return out
}

t.test('cut points do not depend on how the bytes arrive', async (t) => {
  const data = randomBytes(300_000)
  const reference = chunk(data, [data.length]).map((part) => part.length)
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: 40_000 }), { minLength: 1, maxLength: 8 }), (cuts) => {
      const lengths = chunk(data, cuts).map((part) => part.length)
      return JSON.stringify(lengths) === JSON.stringify(reference)
    }),
    { numRuns: 50 },
  )
  t.ok(Buffer.concat(chunk(data, [7, 1000])).equals(data), 'chunks put back together are the data')
})

t.test('sizes stay within bounds and cluster round the average', async (t) => {
  const data = randomBytes(4 * 1024 * 1024)
  const lengths = chunk(data, [65536]).map((part) => part.length)
  t.ok(lengths.slice(0, -1).every((length) => length >= small.min && length <= small.max), 'every chunk but the last is within min..max')
  const mean = data.length / lengths.length
  t.ok(mean > small.avg / 2 && mean < small.avg * 2, `mean ${mean.toFixed(0)} is near ${small.avg}`)
  t.same(chunk(Buffer.alloc(500), [100]).map((part) => part.length), [500], 'shorter than min: one chunk')
  t.same(chunk(Buffer.alloc(0), [1]), [], 'nothing: no chunk')
})

t.test('an insertion disturbs only the chunks around it', async (t) => {
  const data = randomBytes(2 * 1024 * 1024)
  const edited = Buffer.concat([data.subarray(0, 1_000_000), Buffer.from('inserted bytes'), data.subarray(1_000_000)])
  const before = new Set(chunk(data, [65536]).map((part) => digestHex(digestOf(part))))
  const after = chunk(edited, [65536]).map((part) => digestHex(digestOf(part)))
  const shared = after.filter((id) => before.has(id)).length
  t.ok(shared >= after.length - 3, `${shared} of ${after.length} chunks are shared`)
})

t.test('chunk sizes are checked', async (t) => {
  t.doesNotThrow(() => checkChunkSizes(DEFAULT_CHUNK_SIZES))
  t.throws(() => checkChunkSizes({ min: 1024, avg: 3000, max: 9000 }), { code: 'BAD_CONFIG' })
  t.throws(() => checkChunkSizes({ min: 8192, avg: 4096, max: 16384 }), { code: 'BAD_CONFIG' })
  t.throws(() => checkChunkSizes({ min: 1024, avg: 4096, max: 4096 }), { code: 'BAD_CONFIG' })
})

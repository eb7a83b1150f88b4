import { createHash, randomBytes } from 'node:crypto'
import fc from 'fast-check'
import t from 'tap'
import { Chunker, DEFAULT_CHUNK_SIZES, checkChunkSizes, cutPoint, isJoinedChunk, type ChunkSizes } from '../../src/castore/chunker.ts'
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

t.test('the streaming chunker cuts exactly where cutPoint cuts the whole stream', async (t) => {
  for (const sizes of [small, DEFAULT_CHUNK_SIZES]) {
    const data = randomBytes(sizes === small ? 200_000 : 6 * 1024 * 1024)
    const expected: number[] = []
    for (let start = 0; start < data.length; start += expected.at(-1) as number) expected.push(cutPoint(data, start, data.length, sizes))
    for (const cuts of [[data.length], [1], [65536], [sizes.min], [sizes.max, 3], [sizes.avg - 1, sizes.min + 1]]) {
      t.same(chunk(data, cuts, sizes).map((part) => part.length), expected, `${sizes.avg}-byte average, pieces of ${cuts.join(', ')}`)
    }
  }
})

t.test('bytes that never cut (zeros) are cut at the maximum, however they arrive', async (t) => {
  const zeros = Buffer.alloc(5 * small.max + 100)
  const expected = [small.max, small.max, small.max, small.max, small.max, 100]
  for (const cuts of [[zeros.length], [small.max], [1000], [small.min, small.avg, 7]]) t.same(chunk(zeros, cuts).map((part) => part.length), expected, `pieces of ${cuts.join(', ')}`)
})

t.test('the cut points are part of the storage format: a fixed input cuts the same way as always', async (t) => {
  // Bytes from a fixed xorshift32 sequence: the lengths below were cut by the first chunker.
  const data = Buffer.alloc(3 * 1024 * 1024)
  let state = 0x12345678
  for (let index = 0; index < data.length; index++) {
    state ^= state << 13
    state ^= state >>> 17
    state ^= state << 5
    data[index] = state & 0xff
  }
  const lengths = chunk(data, [100_000]).map((part) => part.length)
  t.equal(lengths.length, 681, 'chunk count')
  t.equal(createHash('sha256').update(lengths.join(',')).digest('hex'), '8f17ba57e2439db2914fd4a99a6cd6a6157284918dd6279d2bd8678f373f95bf', 'sha256 of the lengths, comma-separated')
})

t.test('a chunk inside one piece is a view; one across pieces is joined into a buffer of its own', async (t) => {
  const data = randomBytes(100_000)
  const chunker = new Chunker(small)
  const parts = [...chunker.push(data), ...chunker.finish()]
  t.ok(parts.every((part) => part.buffer === data.buffer && !isJoinedChunk(part)), 'one piece: views of it')
  const split = new Chunker(small)
  const across = [...split.push(data.subarray(0, 10)), ...split.push(data.subarray(10)), ...split.finish()]
  t.ok(isJoinedChunk(across[0] as Uint8Array), 'the first chunk spans both pieces: joined')
  t.ok(across.slice(1).every((part) => part.buffer === data.buffer), 'the rest are views')
})

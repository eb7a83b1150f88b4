import { brotliDecompressSync, brotliCompressSync, deflateSync, inflateSync } from 'node:zlib'
import t from 'tap'
import { MAX_PIECE, decode } from '../../src/codec/decode.ts'
import { encode } from '../../src/codec/encode.ts'
import type { CodecMethod } from '../../src/codec/methods.ts'
import { collect } from '../helpers/streams.ts'
import { CLI, run, sampleData, skipWithout, source } from './tools.ts'

const data = sampleData(600_000)
const ODD_CHUNKS = [1, 13, 4096, 70_000, 2]

async function decoded(compressed: Uint8Array, method: CodecMethod, sizes?: number[]): Promise<{ bytes: Buffer; largest: number }> {
  let largest = 0
  const parts: Uint8Array[] = []
  for await (const piece of decode(source(compressed, sizes), method)) {
    largest = Math.max(largest, piece.length)
    parts.push(piece)
  }
  return { bytes: Buffer.concat(parts), largest }
}

/** What a method's standard decoder makes of `compressed`. */
async function reference(method: CodecMethod, compressed: Uint8Array): Promise<Buffer> {
  const cli = CLI[method]
  if (cli) return run(cli.decompress, compressed)
  if (method === 'br') return brotliDecompressSync(compressed)
  if (method === 'deflate') return inflateSync(compressed)
  return Buffer.from(compressed)
}

/** What a method's standard encoder makes of `bytes`. */
async function referenceEncode(method: CodecMethod, bytes: Uint8Array): Promise<Buffer> {
  const cli = CLI[method]
  if (cli) return run(cli.compress, bytes)
  if (method === 'br') return brotliCompressSync(bytes)
  if (method === 'deflate') return deflateSync(bytes)
  return Buffer.from(bytes)
}

const LEVELS: Record<CodecMethod, (number | undefined)[]> = {
  none: [undefined],
  xz: [undefined, 6],
  zstd: [undefined, 19],
  bzip2: [undefined, 9],
  gzip: [undefined, 9],
  deflate: [undefined],
  br: [undefined, 11],
}

for (const method of Object.keys(LEVELS) as CodecMethod[]) {
  t.test(method, { skip: skipWithout(method) }, async (t) => {
    for (const level of LEVELS[method]) {
      const compressed = await collect(encode(source(data), method, { level }))
      t.ok((await reference(method, compressed)).equals(data), `encoded at level ${level ?? 'default'}: the standard decoder gives the input back`)
      t.ok((await decoded(compressed, method)).bytes.equals(data), `level ${level ?? 'default'}: our decoder gives it back`)
    }
    const empty = await collect(encode(source(new Uint8Array(0)), method))
    t.equal((await reference(method, empty)).length, 0, 'empty input encodes to a valid empty stream')

    const theirs = await referenceEncode(method, data)
    const { bytes, largest } = await decoded(theirs, method, ODD_CHUNKS)
    t.ok(bytes.equals(data), 'decodes the standard encoder\'s output fed in odd chunk sizes')
    t.ok(largest <= MAX_PIECE, `pieces are at most ${MAX_PIECE} bytes (largest ${largest})`)

    if (method !== 'br' && method !== 'deflate' && method !== 'none') {
      const second = Buffer.from('a second member\n'.repeat(1000))
      const joined = Buffer.concat([theirs, await referenceEncode(method, second)])
      t.ok((await decoded(joined, method)).bytes.equals(Buffer.concat([data, second])), 'concatenated streams decode as one')
    }
  })
}

t.test('xz with several blocks (as xz -T writes) and zstd with several frames', { skip: skipWithout('xz') || skipWithout('zstd') }, async (t) => {
  const blocks = await run(['xz', '-c', '-1', '--block-size=65536'], data)
  t.ok((await decoded(blocks, 'xz', ODD_CHUNKS)).bytes.equals(data), 'multi-block xz')
  const frames = Buffer.concat([await run(['zstd', '-c', '-q'], data.subarray(0, 1000)), await run(['zstd', '-c', '-q'], data.subarray(1000))])
  t.ok((await decoded(frames, 'zstd')).bytes.equals(data), 'multi-frame zstd')
})

t.test('bzip2: long runs, every byte value, block boundaries', { skip: skipWithout('bzip2') }, async (t) => {
  const runs = Buffer.concat([Buffer.alloc(1000, 7), Buffer.from([1, 1, 1, 1]), Buffer.alloc(259, 2), Buffer.alloc(256).map((_, index) => index), Buffer.alloc(400_000, 0)])
  for (const level of [1, 9]) {
    const ours = await collect(encode(source(runs, [1000, 3]), 'bzip2', { level }))
    t.ok((await run(['bzip2', '-dc'], ours)).equals(runs), `level ${level}: bzip2 -d agrees`)
    t.ok((await decoded(ours, 'bzip2', ODD_CHUNKS)).bytes.equals(runs), `level ${level}: round trip`)
  }
  // Blocks that end exactly where a run is cut, at level 1 (100 kB blocks).
  const periodic = Buffer.alloc(350_000).map((_, index) => (index % 517 < 300 ? 9 : index % 251))
  const ours = await collect(encode(source(periodic), 'bzip2', { level: 1 }))
  t.ok((await run(['bzip2', '-dc'], ours)).equals(periodic), 'several blocks: bzip2 -d agrees')
})

t.test('output that ends exactly on a piece boundary', async (t) => {
  const exact = Buffer.alloc(4 * MAX_PIECE)
  for (const method of Object.keys(LEVELS) as CodecMethod[]) {
    if (skipWithout(method)) continue
    t.ok((await decoded(await referenceEncode(method, exact), method)).bytes.equals(exact), `${method}: 4 × MAX_PIECE bytes of zeros`)
  }
})

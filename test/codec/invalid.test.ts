import { createHash } from 'node:crypto'
import t from 'tap'
import { decode } from '../../src/codec/decode.ts'
import { encode } from '../../src/codec/encode.ts'
import type { CodecMethod } from '../../src/codec/methods.ts'
import { isNixcasError } from '../../src/errors.ts'
import { collect } from '../helpers/streams.ts'
import { CLI, run, sampleData, skipWithout, source } from './tools.ts'

const METHODS: CodecMethod[] = ['xz', 'zstd', 'bzip2', 'gzip', 'deflate', 'br']
/** Methods whose format carries a checksum of the output, so no flipped byte goes unnoticed. */
const CHECKED = new Set<CodecMethod>(['xz', 'zstd', 'bzip2', 'gzip', 'deflate'])
const ZLIB = new Set<CodecMethod>(['gzip', 'deflate', 'br'])
const original = sampleData(6000)
/**
 * Fixed bytes that look random. Not randomBytes: some short random inputs are valid
 * streams (a brotli stream can be one byte), which would make the test fail one run in many.
 */
const garbage = (length: number): Buffer => createHash('shake256', { outputLength: length }).update('not a compressed stream').digest()

/** Decodes and reports what happened: the bytes, or the error code and message. */
async function attempt(bytes: Uint8Array, method: CodecMethod, sizes?: number[]): Promise<{ bytes?: Buffer; code?: string; message?: string }> {
  try {
    return { bytes: await collect(decode(source(bytes, sizes), method)) }
  } catch (error) {
    if (!isNixcasError(error)) throw error
    return { code: error.code, message: error.message }
  }
}

async function compressed(method: CodecMethod): Promise<Buffer> {
  const cli = CLI[method]
  return cli ? run(cli.compress, original) : collect(encode(source(original), method))
}

for (const method of METHODS) {
  t.test(`${method}: every cut point, empty, short and garbage inputs are a 400`, { skip: skipWithout(method) }, async (t) => {
    const whole = await compressed(method)
    t.ok((await attempt(whole, method)).bytes?.equals(original), 'the whole stream decodes')
    const failures: string[] = []
    for (let cut = 0; cut < whole.length; cut++) {
      const result = await attempt(whole.subarray(0, cut), method, cut % 16 === 0 ? [1] : undefined)
      if (result.code !== 'BAD_REQUEST') failures.push(`cut at ${cut}: ${result.code ?? 'accepted'}`)
      else if (!result.message?.startsWith(`the upload is not valid ${method} data: `)) failures.push(`cut at ${cut}: message ${result.message}`)
    }
    t.same(failures, [], `all ${whole.length} truncations refused with BAD_REQUEST naming ${method}`)
    for (const bytes of [garbage(1), garbage(5), garbage(10), garbage(10_000), Buffer.from('<html>not compressed</html>')]) {
      t.equal((await attempt(bytes, method)).code, 'BAD_REQUEST', `${bytes.length} bytes of garbage`)
    }
    // node:zlib, like gzip -d and browsers, ignores bytes after the end of a gzip/deflate/br stream.
    const trailing = Buffer.concat([whole, Buffer.from('garbage after the end')])
    if (!ZLIB.has(method)) t.equal((await attempt(trailing, method)).code, 'BAD_REQUEST', 'garbage after a valid stream')
  })

  t.test(`${method}: a flipped byte is refused or changes nothing`, { skip: skipWithout(method) }, async (t) => {
    const whole = await compressed(method)
    const wrong: number[] = []
    for (let position = 0; position < whole.length; position++) {
      const damaged = Buffer.from(whole)
      damaged[position] = (damaged[position] as number) ^ (1 << position % 8)
      const result = await attempt(damaged, method)
      if (result.bytes && !result.bytes.equals(original) && CHECKED.has(method)) wrong.push(position)
      if (!result.bytes && result.code !== 'BAD_REQUEST') wrong.push(position)
    }
    t.same(wrong, [], CHECKED.has(method) ? 'no damaged stream decodes to other bytes' : 'every damaged stream decodes or is a 400 (br has no checksum)')
  })
}

t.test('none passes bytes through, including empty input', async (t) => {
  t.same(await attempt(new Uint8Array(0), 'none'), { bytes: Buffer.alloc(0) })
  t.ok((await attempt(original, 'none', [1, 100])).bytes?.equals(original))
})

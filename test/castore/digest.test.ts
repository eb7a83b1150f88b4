import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { BLAKE3_IMPLEMENTATION, DigestStream, digestHex, digestOf } from '../../src/castore/digest.ts'

// BLAKE3 test vectors (the reference implementation's).
const EMPTY = 'af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262'
const ABC = '6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85'

t.test(`BLAKE3 (${BLAKE3_IMPLEMENTATION})`, async (t) => {
  t.equal(digestHex(digestOf(Buffer.alloc(0))), EMPTY)
  t.equal(digestHex(digestOf(Buffer.from('abc'))), ABC)
  const data = randomBytes(3 * 1024 * 1024 + 17)
  const stream = new DigestStream()
  for (let offset = 0; offset < data.length; offset += 100_000) stream.update(data.subarray(offset, offset + 100_000))
  t.equal(digestHex(stream.digest()), digestHex(digestOf(data)), 'streamed equals one-shot')
  t.equal(digestHex(new DigestStream().digest()), EMPTY)
})

t.test('the wasm fallback gives the same digests', async (t) => {
  const script = `
    const { digestOf, DigestStream, BLAKE3_IMPLEMENTATION } = await import(${JSON.stringify(new URL('../../src/castore/digest.ts', import.meta.url).pathname)})
    const a = new DigestStream(); const b = new DigestStream()
    a.update(Buffer.from('a')); b.update(Buffer.from('x')); a.update(Buffer.from('bc'))
    console.log(BLAKE3_IMPLEMENTATION, digestOf(Buffer.from('abc')).toString('hex'), a.digest().toString('hex'))
  `
  const output = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { env: { ...process.env, NIXCAS_BLAKE3: 'wasm' } }).toString().trim()
  t.equal(output, `wasm ${ABC} ${ABC}`, 'interleaved streams keep their own state')
})

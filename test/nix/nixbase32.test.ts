import { createHash } from 'node:crypto'
import fc from 'fast-check'
import t from 'tap'
import { decodeNixbase32, encodeNixbase32, isNixbase32 } from '../../src/nix/nixbase32.ts'

t.test('known values from Nix', async (t) => {
  // sha256 of the empty string, as `nix hash to-base32` prints it.
  const empty = createHash('sha256').digest()
  t.equal(encodeNixbase32(empty), '0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73')
  t.same(Buffer.from(decodeNixbase32('0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73', 32)), empty)
  t.equal(encodeNixbase32(new Uint8Array(0)), '')
  t.equal(encodeNixbase32(Uint8Array.of(0xff)), '7z')
})

t.test('round trip for any bytes', async (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 70 }), (bytes) => {
      const text = encodeNixbase32(bytes)
      return isNixbase32(text) && Buffer.from(decodeNixbase32(text, bytes.length)).equals(Buffer.from(bytes))
    }),
  )
  t.pass('round trips')
})

t.test('bad input is refused', async (t) => {
  t.throws(() => decodeNixbase32('e'.repeat(52), 32), { code: 'BAD_BASE32', message: /invalid nixbase32 character "e" at position 0/ })
  t.throws(() => decodeNixbase32('0'.repeat(51), 32), { code: 'BAD_BASE32', message: /must have 52 characters/ })
  t.throws(() => decodeNixbase32('z'.repeat(52), 32), { code: 'BAD_BASE32', message: /bits beyond/ })
  t.throws(() => decodeNixbase32('0'.repeat(51) + 'é', 32), { code: 'BAD_BASE32' })
  t.notOk(isNixbase32('abcdefgh'))
})

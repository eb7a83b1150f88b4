import { randomBytes } from 'node:crypto'
import fc from 'fast-check'
import t from 'tap'
import { GEAR, gearScan, scannedHash } from '../../src/castore/gear-scan.ts'

/** The loop gearScan runs, in plain JavaScript: what its answers are checked against. */
function reference(bytes: Uint8Array, from: number, to: number, hash: number, mask: number): { cut: number; hash: number } {
  for (let index = from; index < to; index++) {
    hash = ((hash << 1) + (GEAR[bytes[index] as number] as number)) | 0
    if ((hash & mask) === 0) return { cut: index + 1, hash }
  }
  return { cut: -1, hash }
}

const scanned = (bytes: Uint8Array, from: number, to: number, hash: number, mask: number): { cut: number; hash: number } => ({
  cut: gearScan(bytes, from, to, hash, mask),
  hash: scannedHash(),
})

t.test('finds the first byte whose hash has the masked bits clear, and leaves the hash where the reference does', async (t) => {
  const data = randomBytes(700_000)
  const property = fc.property(
    fc.integer({ min: 0, max: data.length }),
    fc.integer({ min: 0, max: data.length }),
    fc.integer({ min: 0, max: 32 }),
    fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
    (a, b, bits, hash) => {
      const [from, to] = a <= b ? [a, b] : [b, a]
      const mask = bits === 32 ? -1 : ~((1 << (32 - bits)) - 1)
      const want = reference(data, from, to, hash, mask)
      const got = scanned(data, from, to, hash, mask)
      return got.cut === want.cut && got.hash === want.hash
    },
  )
  t.doesNotThrow(() => fc.assert(property, { numRuns: 300 }))
})

t.test('a scan longer than the module window carries the hash across windows', async (t) => {
  const data = randomBytes(1_100_000)
  // Never matches unless the hash is 0: the whole range is scanned, window after window.
  const want = reference(data, 3, data.length - 5, 12345, -1)
  t.same(scanned(data, 3, data.length - 5, 12345, -1), want, 'no cut: the hash after the last byte')
  // A cut past the first window (256 KiB): zeros never cut (their hash settles on -GEAR[0],
  // whose top bits are set), so the first cut is in the random bytes after them.
  const late = Buffer.concat([Buffer.alloc(300_000), randomBytes(500_000)])
  const mask = ~((1 << (32 - 16)) - 1)
  const first = reference(late, 0, late.length, 0, mask)
  t.ok(first.cut > 300_000, `the first cut is ${first.cut} bytes in`)
  t.same(scanned(late, 0, late.length, 0, mask), first)
})

t.test('views of a larger buffer are scanned at their own offsets', async (t) => {
  const backing = randomBytes(200_000)
  const view = new Uint8Array(backing.buffer, backing.byteOffset + 777, 150_000)
  const mask = ~((1 << (32 - 12)) - 1)
  t.same(scanned(view, 10, view.length, 0, mask), reference(view, 10, view.length, 0, mask))
  t.same(scanned(view, 50, 50, 99, mask), { cut: -1, hash: 99 }, 'an empty range: no cut, the hash unchanged')
})

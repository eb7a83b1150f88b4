import { randomBytes } from 'node:crypto'
import t from 'tap'
import { Pieces } from '../../src/cache/upstream/pieces.ts'

/** Every byte from `start` to `end`, read as a reader does (pieces of at most what read returns). */
function readAll(pieces: Pieces, start: number, end: number): Buffer {
  const parts: Uint8Array[] = []
  for (let at = start; at < end; ) {
    const bytes = pieces.read(at, end - at)
    if (bytes.length === 0) throw new Error(`an empty read at ${at}`)
    parts.push(Buffer.from(bytes))
    at += bytes.length
  }
  return Buffer.concat(parts)
}

t.test('pieces of every size read back at any offset; a trickle of tiny pieces costs a block per 64 KiB, not an object per piece', async (t) => {
  const bytes = randomBytes(3 * 1024 * 1024)
  const pieces = new Pieces(false)
  let added = 0
  for (let index = 0; added < bytes.length; index++) {
    // One byte at a time for a while, then pieces of every size, large ones among them.
    const size = Math.min(bytes.length - added, added < 200_000 ? 1 : 1 + ((index * 7_919) % 100_000))
    pieces.append(bytes.subarray(added, added + size))
    added += size
  }
  t.equal(pieces.end, bytes.length)
  t.ok(readAll(pieces, 0, bytes.length).equals(bytes), 'every byte reads back in order')
  for (const offset of [0, 1, 65_535, 65_536, 199_999, 200_000, 1_234_567, bytes.length - 1]) {
    t.equal(pieces.read(offset, 1)[0], bytes[offset], `the byte at ${offset}`)
  }
  t.ok(pieces.count < 200, `${pieces.count} pieces held for ${bytes.length} bytes added in ${added} steps`)
})

t.test('a view handed out stays valid while later pieces are copied into the same block', async (t) => {
  const pieces = new Pieces(false)
  pieces.append(Buffer.from('abc'))
  const early = pieces.read(0, 3)
  pieces.append(Buffer.from('def'))
  t.equal(Buffer.from(early).toString(), 'abc')
  t.equal(Buffer.from(pieces.read(0, 6)).toString(), 'abcdef', 'the block grew under one piece')
})

t.test('pieces are held as given, or copied when asked; dropped pieces move the start', async (t) => {
  const large = randomBytes(100_000)
  const given = new Pieces(false)
  given.append(large)
  t.equal(given.read(0, 10).buffer, large.buffer, 'held as given')
  const copied = new Pieces(true)
  copied.append(large)
  t.not(copied.read(0, 10).buffer, large.buffer, 'a copy')
  copied.append(Buffer.from('tail'))
  copied.dropFirst(1)
  t.equal(copied.start, 100_000)
  t.throws(() => copied.read(5, 1), { code: 'INTERNAL' }, 'a dropped byte is not read')
  t.equal(Buffer.from(copied.read(100_000, 4)).toString(), 'tail')
  copied.append(Buffer.from('!'))
  t.equal(Buffer.from(copied.read(100_000, 5)).toString(), 'tail!', 'appending goes on after a drop')
})

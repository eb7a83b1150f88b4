import t from 'tap'
import { digestOf } from '../../src/castore/digest.ts'
import { DIRECTORY_MAGIC, decodeDirectory, directoryDigest, encodeDirectory } from '../../src/castore/directory.ts'
import { directoryNarSize, type DirectoryEntry } from '../../src/castore/node.ts'

const name = (text: string): Buffer => Buffer.from(text)
const entries: DirectoryEntry[] = [
  { name: name('bin'), node: { type: 'directory', digest: digestOf(Buffer.from('d')), size: 120 } },
  { name: name('blob'), node: { type: 'file', digest: digestOf(Buffer.from('b')), size: 5_000_000, executable: false, chunked: true } },
  { name: name('link'), node: { type: 'symlink', target: name('../bin/x') } },
  { name: name('run'), node: { type: 'file', digest: digestOf(Buffer.from('r')), size: 3, executable: true, chunked: false } },
  { name: Buffer.from([0xff, 0xfe]), node: { type: 'file', digest: digestOf(Buffer.alloc(0)), size: 0, executable: false, chunked: false } },
]

t.test('encoding round trips and is canonical', async (t) => {
  const encoding = encodeDirectory(entries)
  t.ok(encoding.subarray(0, 4).equals(DIRECTORY_MAGIC))
  t.same(decodeDirectory(encoding), entries)
  t.ok(encodeDirectory(decodeDirectory(encoding)).equals(encoding), 're-encoding gives the same bytes')
  t.ok(directoryDigest(encodeDirectory([...entries])).equals(directoryDigest(encoding)), 'equal trees, equal digests')
  t.notOk(directoryDigest(encodeDirectory(entries.slice(1))).equals(directoryDigest(encoding)))
  t.equal(encodeDirectory([]).length, 8, 'the empty directory')
  t.equal(directoryNarSize([]), 16 + 16 + 24 + 16, 'an empty directory node is ( type directory )')
})

t.test('bad encodings are refused', async (t) => {
  const good = encodeDirectory(entries)
  const cases: [string, Buffer][] = [
    ['bad magic', Buffer.concat([Buffer.from('XXXX'), good.subarray(4)])],
    ['truncated', good.subarray(0, good.length - 1)],
    ['trailing bytes', Buffer.concat([good, Buffer.from([0])])],
    ['too many entries', (() => { const copy = Buffer.from(good); copy.writeUInt32LE(99, 4); return copy })()],
    ['unknown kind', (() => { const copy = Buffer.from(good); copy[8 + 1 + 3] = 9; return copy })()],
  ]
  for (const [label, bytes] of cases) t.throws(() => decodeDirectory(bytes), { code: 'CORRUPT_OBJECT' }, label)
  const symlink = { type: 'symlink' as const, target: name('x') }
  t.throws(() => encodeDirectory([{ name: name('b'), node: symlink }, { name: name('a'), node: symlink }]), { code: 'CORRUPT_OBJECT', message: /out of order/ })
  t.throws(() => encodeDirectory([{ name: name('a'), node: symlink }, { name: name('a'), node: symlink }]), { code: 'CORRUPT_OBJECT', message: /twice/ })
  for (const bad of ['', '.', '..', 'a/b', 'a\0b', 'x'.repeat(256)]) {
    t.throws(() => encodeDirectory([{ name: name(bad), node: symlink }]), { code: 'CORRUPT_OBJECT' }, `name ${JSON.stringify(bad.slice(0, 10))}`)
  }
  t.throws(() => encodeDirectory([{ name: name('a'), node: { type: 'symlink', target: Buffer.alloc(0) } }]), { code: 'CORRUPT_OBJECT' })
  const unsorted = Buffer.concat([DIRECTORY_MAGIC, Buffer.from([2, 0, 0, 0]), Buffer.from([1, 0x62, 5, 1, 0, 0x78]), Buffer.from([1, 0x61, 5, 1, 0, 0x78])])
  t.throws(() => decodeDirectory(unsorted), { code: 'CORRUPT_OBJECT', message: /out of order/ })
})

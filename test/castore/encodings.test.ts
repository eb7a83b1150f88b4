import t from 'tap'
import { digestOf } from '../../src/castore/digest.ts'
import { decodeManifest, encodeManifest } from '../../src/castore/manifest.ts'
import { decodePack, encodePack } from '../../src/castore/pack.ts'
import { decodeNarIndexEntry, decodePathInfo, encodeNarIndexEntry, encodePathInfo, type PathInfo } from '../../src/castore/path-info.ts'
import { encodeDirectory } from '../../src/castore/directory.ts'
import { parseNixHash } from '../../src/nix/hash.ts'

t.test('manifests', async (t) => {
  const chunks = [{ digest: digestOf(Buffer.from('a')), size: 10 }, { digest: digestOf(Buffer.from('b')), size: 5 }]
  t.same(decodeManifest(encodeManifest(chunks), 15), chunks)
  t.throws(() => decodeManifest(encodeManifest(chunks), 16), { code: 'CORRUPT_OBJECT', message: /add up to 15/ })
  t.throws(() => decodeManifest(encodeManifest([]), 0), { code: 'CORRUPT_OBJECT' })
  t.throws(() => decodeManifest(encodeManifest(chunks).subarray(1), 15), { code: 'CORRUPT_OBJECT' })
})

t.test('packs check their directories', async (t) => {
  const directory = encodeDirectory([])
  const records = [
    { kind: 'directory' as const, digest: digestOf(directory), bytes: directory },
    { kind: 'manifest' as const, digest: digestOf(Buffer.from('blob')), bytes: encodeManifest([{ digest: digestOf(Buffer.from('c')), size: 1 }]) },
  ]
  t.same(decodePack(encodePack(records)), records)
  const tampered = encodePack([{ ...records[0]!, digest: digestOf(Buffer.from('other')) }])
  t.throws(() => decodePack(tampered), { code: 'CORRUPT_OBJECT', message: /does not match/ })
  t.throws(() => decodePack(encodePack(records).subarray(0, 20)), { code: 'CORRUPT_OBJECT' })
})

t.test('path info and the narhash index', async (t) => {
  const info: PathInfo = {
    storePath: '/nix/store/hsf304jrmqh22x30v2bfvz22ccrmvk1q-x',
    narHash: parseNixHash('sha256:1dqscpdnrp93q1q62pp6q26wj5rrr049sn2axcchprzsdchiqlq2'),
    narSize: 24 + 16 * 5 + 8 + 8,
    references: ['wpjqh28ynj0kdpgv9bbmhy126hp7rkxf-dep'],
    deriver: '4n14fsk47lsk01qahwp37rx7129dnjq4-x.drv',
    signatures: ['k:abc'],
    root: { type: 'file', digest: digestOf(Buffer.from('x')), size: 1, executable: false, chunked: false },
  }
  t.same(decodePathInfo(encodePathInfo(info)), info)
  t.throws(() => decodePathInfo(encodePathInfo({ ...info, narSize: 5 })), { code: 'CORRUPT_OBJECT' }, 'size must agree with the tree')
  t.throws(() => decodePathInfo(Buffer.from('{"v":2}')), { code: 'CORRUPT_OBJECT' })
  t.throws(() => decodePathInfo(Buffer.from('not json')), { code: 'CORRUPT_OBJECT' })
  t.same(decodeNarIndexEntry(encodeNarIndexEntry({ narSize: info.narSize, root: info.root })), { narSize: info.narSize, root: info.root })
})

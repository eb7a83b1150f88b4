import t from 'tap'
import { formatStorePath, parseStorePath, parseStorePathBase } from '../../src/nix/store-path.ts'

const HASH = 'hsf304jrmqh22x30v2bfvz22ccrmvk1q'

t.test('valid store paths parse', async (t) => {
  const path = parseStorePath(`/nix/store/${HASH}-hello-2.12.1`)
  t.same(path, { hash: HASH, name: 'hello-2.12.1' })
  t.equal(formatStorePath(path), `/nix/store/${HASH}-hello-2.12.1`)
  t.same(parseStorePathBase(`${HASH}-a+b=c?d_e.f`), { hash: HASH, name: 'a+b=c?d_e.f' })
  t.same(parseStorePath(`/gnu/store/${HASH}-x`, '/gnu/store').name, 'x')
  t.equal(parseStorePathBase(`${HASH}-${'n'.repeat(211)}`).name.length, 211)
})

t.test('invalid store paths are refused', async (t) => {
  const bad = [
    `/nix/store/${HASH}`,
    `/nix/store/${HASH}-`,
    `/nix/store/${HASH.slice(1)}-x`,
    `/nix/store/${HASH.replace('h', 'e')}-x`,
    `/nix/store/${HASH}-.hidden`,
    `/nix/store/${HASH}-with space`,
    `/nix/store/${HASH}-sub/dir`,
    `/nix/store/${HASH}-${'n'.repeat(212)}`,
    `/other/${HASH}-x`,
    `/nix/store/${HASH}_x`,
  ]
  for (const path of bad) t.throws(() => parseStorePath(path), { code: 'BAD_STORE_PATH' }, path)
})

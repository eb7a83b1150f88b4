import t from 'tap'
import {
  CODEC_METHODS,
  contentEncodingOf,
  methodFromContentEncoding,
  methodFromNarinfo,
  narSuffix,
  narinfoCompressionOf,
  parseNarFileName,
} from '../../src/codec/methods.ts'

t.test('NAR file names', async (t) => {
  t.same(parseNarFileName('abc.nar'), { stem: 'abc', compression: 'none' })
  t.same(parseNarFileName('abc.nar.xz'), { stem: 'abc', compression: 'xz' })
  t.same(parseNarFileName('abc.nar.zst'), { stem: 'abc', compression: 'zstd' })
  t.same(parseNarFileName('abc.nar.bz2'), { stem: 'abc', compression: 'bzip2' })
  t.same(parseNarFileName('abc.nar.br'), { stem: 'abc', compression: 'br' })
  for (const name of ['abc.nar.gz', 'abc.nar.lz4', 'abc.tar', 'abc.nar.', '.nar', 'a/b.nar', 'abc.nar.xz.xz', `${'a'.repeat(129)}.nar`]) {
    t.equal(parseNarFileName(name), undefined, name)
  }
  for (const method of CODEC_METHODS) {
    const suffix = narSuffix(method)
    if (suffix !== undefined) t.same(parseNarFileName(`x${suffix}`), { stem: 'x', compression: method }, `${method} round-trips through its suffix`)
  }
})

t.test('Content-Encoding tokens', async (t) => {
  t.equal(methodFromContentEncoding(undefined), 'none')
  t.equal(methodFromContentEncoding(''), 'none')
  t.equal(methodFromContentEncoding('identity'), 'none')
  t.equal(methodFromContentEncoding(' XZ '), 'xz')
  t.equal(methodFromContentEncoding('x-gzip'), 'gzip')
  t.equal(methodFromContentEncoding('x-bzip2'), 'bzip2')
  t.equal(methodFromContentEncoding('deflate'), 'deflate')
  for (const token of ['compress', 'lz4', 'gzip, br', 'zstd;q=1', 'nonsense']) t.equal(methodFromContentEncoding(token), undefined, token)
  for (const method of CODEC_METHODS) t.equal(methodFromContentEncoding(contentEncodingOf(method)), method, `${method} round-trips`)
})

t.test('narinfo Compression values', async (t) => {
  t.equal(methodFromNarinfo(undefined), 'bzip2', 'a missing line means bzip2, as for Nix')
  t.equal(methodFromNarinfo('none'), 'none')
  t.equal(methodFromNarinfo('deflate'), undefined, 'deflate is an HTTP coding only')
  t.equal(methodFromNarinfo('lz4'), undefined)
  for (const method of CODEC_METHODS) {
    const value = narinfoCompressionOf(method)
    if (value !== undefined) t.equal(methodFromNarinfo(value), method, `${method} round-trips`)
  }
})

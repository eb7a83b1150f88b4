import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { parseNarInfo, renderNarInfo } from '../../src/nix/narinfo.ts'
import { buildClosure } from '../helpers/closure.ts'
import { nix, skipWithoutNix } from '../helpers/nix.ts'
import { tempDir } from '../helpers/trees.ts'

const SAMPLE = `StorePath: /nix/store/hsf304jrmqh22x30v2bfvz22ccrmvk1q-nixcas-top
URL: nar/0l2xmr4kip0c2v4gqz5ysad9ly947gfkc66y0vc16wh7ji2lxwmm.nar.xz
Compression: xz
FileHash: sha256:0l2xmr4kip0c2v4gqz5ysad9ly947gfkc66y0vc16wh7ji2lxwmm
FileSize: 232
NarHash: sha256:1dqscpdnrp93q1q62pp6q26wj5rrr049sn2axcchprzsdchiqlq2
NarSize: 528
References: wpjqh28ynj0kdpgv9bbmhy126hp7rkxf-nixcas-dep
Deriver: 4n14fsk47lsk01qahwp37rx7129dnjq4-nixcas-top.drv
Sig: test:tz6hPau0xvJn3SVc4lqlkKRxEBFzB3J4ALmyGjmScxw+OIVjzJ5FhT8/yCdBJxLf27RfPyNx0P6pzQiJrgsSDQ==
`

t.test('a narinfo parses and renders back unchanged', async (t) => {
  const info = parseNarInfo(SAMPLE)
  t.equal(info.narSize, 528)
  t.equal(info.compression, 'xz')
  t.same(info.references, ['wpjqh28ynj0kdpgv9bbmhy126hp7rkxf-nixcas-dep'])
  t.equal(info.signatures.length, 1)
  t.equal(renderNarInfo(info), SAMPLE)
})

t.test('optional fields and defaults', async (t) => {
  const minimal = parseNarInfo(
    'StorePath: /nix/store/hsf304jrmqh22x30v2bfvz22ccrmvk1q-x\nURL: nar/a.nar\nNarHash: sha256:1dqscpdnrp93q1q62pp6q26wj5rrr049sn2axcchprzsdchiqlq2\nNarSize: 1\nUnknownField: ignored\n',
  )
  t.equal(minimal.compression, 'bzip2', 'absent Compression means bzip2')
  t.same(minimal.references, [])
  const rendered = renderNarInfo(minimal)
  t.match(rendered, /^Compression: bzip2$/m, 'Compression is always written')
  t.match(rendered, /^References: $/m)
  const full = parseNarInfo(`${SAMPLE}System: x86_64-linux\nSig: other:${Buffer.alloc(64, 1).toString('base64')}\nCA: fixed:r:sha256:1dqscpdnrp93q1q62pp6q26wj5rrr049sn2axcchprzsdchiqlq2\n`)
  t.equal(full.system, 'x86_64-linux')
  t.equal(full.signatures.length, 2)
  t.equal(full.ca, 'fixed:r:sha256:1dqscpdnrp93q1q62pp6q26wj5rrr049sn2axcchprzsdchiqlq2')
  t.same(parseNarInfo(renderNarInfo(full)), full)
  const hex = parseNarInfo(SAMPLE.replace(/NarHash: .*/, `NarHash: sha256:${'ab'.repeat(32)}`))
  t.match(renderNarInfo(hex), /NarHash: sha256:[0-9a-z]{52}\n/, 'base16 hashes are accepted and written in nixbase32')
})

t.test('malformed narinfos are refused with the line at fault', async (t) => {
  const cases: [string, string, RegExp][] = [
    ['missing StorePath', SAMPLE.replace(/^StorePath: .*\n/m, ''), /no StorePath/],
    ['missing NarHash', SAMPLE.replace(/^NarHash: .*\n/m, ''), /no NarHash/],
    ['missing NarSize', SAMPLE.replace(/^NarSize: .*\n/m, ''), /no NarSize/],
    ['missing URL', SAMPLE.replace(/^URL: .*\n/m, ''), /no URL/],
    ['bad hash', SAMPLE.replace(/^NarHash: .*$/m, 'NarHash: sha256:abc'), /line 6 \(NarHash\)/],
    ['md5 NarHash', SAMPLE.replace(/^NarHash: .*$/m, `NarHash: md5:${'0'.repeat(32)}`), /line 6 \(NarHash\).*sha256/],
    ['negative size', SAMPLE.replace(/^NarSize: .*$/m, 'NarSize: -5'), /line 7 \(NarSize\)/],
    ['non-numeric size', SAMPLE.replace(/^NarSize: .*$/m, 'NarSize: lots'), /line 7 \(NarSize\)/],
    ['zero size', SAMPLE.replace(/^NarSize: .*$/m, 'NarSize: 0'), /line 7 \(NarSize\)/],
    ['huge size', SAMPLE.replace(/^NarSize: .*$/m, 'NarSize: 99999999999999999999'), /line 7 \(NarSize\)/],
    ['bad FileSize', SAMPLE.replace(/^FileSize: .*$/m, 'FileSize: 1.5'), /line 5 \(FileSize\)/],
    ['bad reference', SAMPLE.replace(/^References: .*$/m, 'References: not-a-path'), /line 8 \(References\)/],
    ['full-path reference', SAMPLE.replace(/^References: .*$/m, 'References: /nix/store/wpjqh28ynj0kdpgv9bbmhy126hp7rkxf-nixcas-dep'), /line 8 \(References\)/],
    ['bad deriver', SAMPLE.replace(/^Deriver: .*$/m, 'Deriver: ../../etc/passwd'), /line 9 \(Deriver\)/],
    ['bad store path', SAMPLE.replace(/^StorePath: .*$/m, 'StorePath: /tmp/x'), /line 1 \(StorePath\)/],
    ['bad signature', `${SAMPLE}Sig: nocolon\n`, /line 11 \(Sig\)/],
    ['short signature', `${SAMPLE}Sig: k:AAAA\n`, /line 11 \(Sig\)/],
    ['duplicate field', `${SAMPLE}NarSize: 1\n`, /line 11 \(NarSize\).*twice/],
    ['no colon', `${SAMPLE}garbage\n`, /line 11/],
    ['bad CA', `${SAMPLE}CA: nonsense\n`, /line 11 \(CA\)/],
  ]
  for (const [label, text, message] of cases) t.throws(() => parseNarInfo(text), { code: 'BAD_NARINFO', message }, label)
})

t.test('Nix refuses a narinfo whose last line has no newline, and so do we', async (t) => {
  t.throws(() => parseNarInfo(SAMPLE.trimEnd()), { code: 'BAD_NARINFO', message: /line 10 does not end in a newline/ })
  t.throws(() => parseNarInfo('StorePath: /nix/store/hsf304jrmqh22x30v2bfvz22ccrmvk1q-x'), { code: 'BAD_NARINFO', message: /line 1 does not end in a newline/ })
})

t.test('control characters are refused wherever they are, naming the line', async (t) => {
  const cases: [string, string, RegExp][] = [
    ['tab in a value', `${SAMPLE}System: x86_64\tlinux\n`, /line 11: control character 0x09 at column 15/],
    ['CRLF line ends', SAMPLE.replace(/\n/g, '\r\n'), /line 1: control character 0x0d/],
    ['NUL in URL', SAMPLE.replace('URL: nar/', 'URL: nar/\u0000'), /line 2: control character 0x00 at column 10/],
    ['DEL in Deriver', SAMPLE.replace('Deriver: ', 'Deriver: \u007f'), /line 9: control character 0x7f/],
    ['escape in an unknown field', `${SAMPLE}X-Note: \u001b[31mred\n`, /line 11: control character 0x1b/],
    ['vertical tab in a key', `${SAMPLE}Sy\u000bstem: x\n`, /line 11: control character 0x0b at column 3/],
    ['form feed in a signature', SAMPLE.replace('Sig: test:', 'Sig: te\fst:'), /line 10: control character 0x0c/],
  ]
  for (const [label, text, message] of cases) t.throws(() => parseNarInfo(text), { code: 'BAD_NARINFO', message }, label)
  t.equal(parseNarInfo(`${SAMPLE}System: ünïcode-λ\n`).system, 'ünïcode-λ', 'non-ASCII text is not a control character')
})

t.test('Sig lines: well formed, repeated ones collapse, at most maxSignatures distinct', async (t) => {
  const sig = (i: number): string => `Sig: key-${i}:${Buffer.alloc(64, i).toString('base64')}\n`
  const base = SAMPLE.replace(/^Sig: .*\n/m, '')
  const sigs = (n: number): string => Array.from({ length: n }, (_, i) => sig(i)).join('')
  t.equal(parseNarInfo(base + sigs(32)).signatures.length, 32, '32 by default')
  t.throws(() => parseNarInfo(base + sigs(33)), { code: 'BAD_NARINFO', message: /line 42 \(Sig\): more than 32 signatures/ })
  t.equal(parseNarInfo(base + sigs(32) + sig(5) + sig(5)).signatures.length, 32, 'repeats collapse, as in Nix (a set)')
  t.throws(() => parseNarInfo(base + sigs(3), undefined, { maxSignatures: 2 }), { message: /line 12 \(Sig\): more than 2 signatures/ })
  t.equal(parseNarInfo(base + sigs(3), '/nix/store', { maxSignatures: 3 }).signatures.length, 3)
  for (const bad of ['Sig: \n', 'Sig: k:\n', 'Sig: :AAAA\n', 'Sig: a b:' + Buffer.alloc(64).toString('base64') + '\n', `Sig: k:${Buffer.alloc(63).toString('base64')}\n`, 'Sig: k:not base64!\n']) {
    t.throws(() => parseNarInfo(base + bad), { code: 'BAD_NARINFO', message: /line 10 \(Sig\)/ }, JSON.stringify(bad))
  }
})

t.test('CA: once, a content address Nix can parse, or empty for none', async (t) => {
  const withCa = (ca: string): string => `${SAMPLE}CA: ${ca}\n`
  const good = [
    'fixed:r:sha256:1dqscpdnrp93q1q62pp6q26wj5rrr049sn2axcchprzsdchiqlq2',
    'fixed:sha256:1dqscpdnrp93q1q62pp6q26wj5rrr049sn2axcchprzsdchiqlq2',
    'text:sha256:1dqscpdnrp93q1q62pp6q26wj5rrr049sn2axcchprzsdchiqlq2',
    `fixed:sha1:${'ab'.repeat(20)}`,
    `fixed:git:sha1:${'ab'.repeat(20)}`,
    `fixed:r:sha512:${Buffer.alloc(64, 9).toString('base64')}`,
    `fixed:md5:${'0'.repeat(32)}`,
    `fixed:r:blake3:${'cd'.repeat(32)}`,
  ]
  for (const ca of good) t.equal(parseNarInfo(withCa(ca)).ca, ca, ca)
  t.equal(parseNarInfo(withCa('')).ca, undefined, 'an empty CA means none, as for Nix')
  const bad = [
    'fixed:r:sha256:1dqscpdnrp93q1q62pp6q26wj5rrr049sn2axcchprzsdchiqlq',
    'text:sha1:' + 'ab'.repeat(20),
    'fixed:r:sha3:' + 'ab'.repeat(32),
    'fixed:x:sha256:1dqscpdnrp93q1q62pp6q26wj5rrr049sn2axcchprzsdchiqlq2',
    'sha256:1dqscpdnrp93q1q62pp6q26wj5rrr049sn2axcchprzsdchiqlq2',
    `fixed:sha1:${'AB'.repeat(20)}`,
    `fixed:sha256:${'e'.repeat(52)}`,
  ]
  for (const ca of bad) t.throws(() => parseNarInfo(withCa(ca)), { code: 'BAD_NARINFO', message: /line 11 \(CA\): CA .* is not a content address/ }, ca)
  t.throws(() => parseNarInfo(withCa(good[0] ?? '') + `CA: ${good[1] ?? ''}\n`), { code: 'BAD_NARINFO', message: /line 12 \(CA\): CA appears twice/ })
})

t.test('References: a second line is refused (as Nix does), repeated entries collapse', async (t) => {
  t.throws(() => parseNarInfo(`${SAMPLE}References: \n`), { code: 'BAD_NARINFO', message: /line 11 \(References\): References appears twice/ })
  const twice = SAMPLE.replace(/^References: (.*)$/m, 'References: $1  $1')
  t.same(parseNarInfo(twice).references, ['wpjqh28ynj0kdpgv9bbmhy126hp7rkxf-nixcas-dep'])
})

t.test('narinfos written by nix copy --to file:// parse and re-render faithfully', { skip: skipWithoutNix }, async (t) => {
  const dir = await tempDir(t)
  const closure = await buildClosure(dir)
  const cache = join(dir, 'cache')
  await nix('nix', ['copy', '--to', `file://${cache}`, closure.top])
  const files = (await readdir(cache)).filter((name) => name.endsWith('.narinfo'))
  t.equal(files.length, 2)
  for (const name of files) {
    const text = await readFile(join(cache, name), 'utf8')
    const info = parseNarInfo(text)
    t.equal(renderNarInfo(info), text, `${name} renders back byte for byte`)
  }
})

import { randomBytes } from 'node:crypto'
import { readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { debugInfoMember, debugInfoName, debugInfoNarUrl, parseDebugInfo, parseDebugInfoName, renderDebugInfo } from '../../src/nix/debuginfo.ts'
import { parseNarInfo } from '../../src/nix/narinfo.ts'
import { caNix } from '../helpers/ca-derivation.ts'
import { skipWithoutNix } from '../helpers/nix.ts'
import { tempDir } from '../helpers/trees.ts'

// What Nix 2.8 PUT for a NAR holding lib/debug/.build-id/ab/cdef…01.debug, with
// `nix copy --to 'http://…?index-debug-info=true'` (after a HEAD of the same URL).
const NAME = 'abcdef0123456789abcdef0123456789abcdef01.debug'
const BODY = '{"archive":"../nar/0iay5bqybjgmgd3b4frsv54y9f453dqxhpwnrmpc1di4afpypmnp.nar.xz","member":"lib/debug/.build-id/ab/cdef0123456789abcdef0123456789abcdef01.debug"}'

t.test('an entry as Nix writes it parses and renders back unchanged', async (t) => {
  const buildId = parseDebugInfoName(NAME)
  t.equal(buildId, 'abcdef0123456789abcdef0123456789abcdef01')
  t.equal(debugInfoName(buildId), NAME)
  t.equal(debugInfoMember(buildId), 'lib/debug/.build-id/ab/cdef0123456789abcdef0123456789abcdef01.debug')
  const info = parseDebugInfo(BODY, buildId)
  t.equal(renderDebugInfo(info), BODY)
  t.equal(debugInfoNarUrl(info), 'nar/0iay5bqybjgmgd3b4frsv54y9f453dqxhpwnrmpc1di4afpypmnp.nar.xz')
  for (const ext of ['', '.bz2', '.zst', '.lzip', '.lz4', '.br']) {
    const archive = `../nar/0iay5bqybjgmgd3b4frsv54y9f453dqxhpwnrmpc1di4afpypmnp.nar${ext}`
    t.equal(parseDebugInfo(JSON.stringify({ member: info.member, archive })).archive, archive, `archive with ${ext || 'no extension'}`)
  }
  t.equal(renderDebugInfo(parseDebugInfo(JSON.stringify({ member: info.member, archive: info.archive }, null, 2))), BODY, 'fields in any order and spacing render in Nix order')
})

t.test('names and bodies Nix would not write are refused', async (t) => {
  for (const name of ['abcdef0123456789abcdef0123456789abcdef01', 'ABCDEF0123456789abcdef0123456789abcdef01.debug', 'abcdef0123456789abcdef0123456789abcdef0.debug', '../abcdef0123456789abcdef0123456789abcdef01.debug', 'abcdef0123456789abcdef0123456789abcdef01.debug/x', '']) {
    t.throws(() => parseDebugInfoName(name), { code: 'BAD_DEBUGINFO', message: /is not <40 lowercase hex digits>\.debug/ }, JSON.stringify(name))
  }
  const member = 'lib/debug/.build-id/ab/cdef0123456789abcdef0123456789abcdef01.debug'
  const archive = '../nar/0iay5bqybjgmgd3b4frsv54y9f453dqxhpwnrmpc1di4afpypmnp.nar.xz'
  const cases: [string, string, RegExp][] = [
    ['not JSON', '{', /not JSON/],
    ['an array', '[]', /must be a JSON object/],
    ['missing member', JSON.stringify({ archive }), /no "member" field/],
    ['missing archive', JSON.stringify({ member }), /no "archive" field/],
    ['extra field', JSON.stringify({ archive, member, x: 1 }), /unknown field "x"/],
    ['archive not a string', JSON.stringify({ archive: 1, member }), /"archive" must be a string/],
    ['archive outside nar/', JSON.stringify({ archive: '../../etc/passwd', member }), /debuginfo archive/],
    ['archive without ../', JSON.stringify({ archive: archive.slice(3), member }), /debuginfo archive/],
    ['archive with a query', JSON.stringify({ archive: `${archive}?x=1`, member }), /debuginfo archive/],
    ['archive, unknown compression', JSON.stringify({ archive: archive.replace('.xz', '.gz'), member }), /debuginfo archive/],
    ['archive, not nixbase32', JSON.stringify({ archive: archive.replace('0iay', 'eiay'), member }), /debuginfo archive/],
    ['member elsewhere', JSON.stringify({ archive, member: '/etc/passwd' }), /debuginfo member/],
    ['member with a leading /', JSON.stringify({ archive, member: `/${member}` }), /debuginfo member/],
    ['member of another build-id', JSON.stringify({ archive, member: member.replace('ab/', 'ac/') }), /not the file of build-id/],
  ]
  for (const [label, text, message] of cases) t.throws(() => parseDebugInfo(text, 'abcdef0123456789abcdef0123456789abcdef01'), { code: 'BAD_DEBUGINFO', message }, label)
})

t.test('the index Nix 2.8 writes with index-debug-info=true parses and names its NAR', { skip: skipWithoutNix }, async (t) => {
  const dir = await tempDir(t)
  const buildId = randomBytes(20).toString('hex')
  const file = join(dir, 'debug.nix')
  // One indexable file, and two Nix skips: a name that is not 38 hex digits, a directory that is not 2.
  await writeFile(
    file,
    `derivation { name = "nixcas-debug"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "d=$out/lib/debug/.build-id; /bin/mkdir -p $d/${buildId.slice(0, 2)} $d/zz; echo debug > $d/${buildId.slice(0, 2)}/${buildId.slice(2)}.debug; echo x > $d/${buildId.slice(0, 2)}/short.debug; echo y > $d/zz/${buildId.slice(2)}.debug" ]; }`,
  )
  const path = await caNix('nix-build', [file, '--no-out-link'])
  const cache = join(dir, 'cache')
  await caNix('nix', ['copy', '--to', `file://${cache}?index-debug-info=true&compression=zstd`, path])
  const names = await readdir(join(cache, 'debuginfo'))
  t.same(names, [`${buildId}.debug`], 'one entry, named <build-id>.debug')
  const text = await readFile(join(cache, 'debuginfo', `${buildId}.debug`), 'utf8')
  const info = parseDebugInfo(text, parseDebugInfoName(`${buildId}.debug`))
  t.equal(renderDebugInfo(info), text, 'renders back byte for byte')
  t.equal(info.member, debugInfoMember(buildId))
  const narinfo = parseNarInfo(await readFile(join(cache, `${path.slice('/nix/store/'.length, '/nix/store/'.length + 32)}.narinfo`), 'utf8'))
  t.equal(debugInfoNarUrl(info), narinfo.url, "the archive is the narinfo's NAR URL")
})

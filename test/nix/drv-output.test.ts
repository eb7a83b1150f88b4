import t from 'tap'
import {
  buildTraceName,
  checkOutputName,
  formatDoiPath,
  outputPathName,
  parseBuildTraceName,
  parseDoiPath,
  parseDrvOutputId,
  parseRealisationName,
  realisationName,
} from '../../src/nix/drv-output.ts'

const HEX = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'
const DRV = 'g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-bar.drv'

t.test('realisation names as Nix <= 2.34 writes them', async (t) => {
  const id = parseRealisationName(`sha256:${HEX}!out.doi`)
  t.same(id, { drvHash: HEX, outputName: 'out' })
  t.equal(realisationName(id), `sha256:${HEX}!out.doi`)
  t.same(parseDrvOutputId(`sha256:${HEX}!dev`), { drvHash: HEX, outputName: 'dev' })
  t.same(parseDoiPath(`realisations/sha256:${HEX}!lib.doi`), { layout: 'realisations', id: { drvHash: HEX, outputName: 'lib' } })
})

t.test('build trace names as Nix >= 2.35 writes them', async (t) => {
  const key = parseBuildTraceName(`${DRV}/out.doi`)
  t.same(key, { drvPath: DRV, outputName: 'out' })
  t.equal(buildTraceName(key), `${DRV}/out.doi`)
  const path = parseDoiPath(`build-trace-v2/${DRV}/dev.doi`)
  t.same(path, { layout: 'build-trace-v2', key: { drvPath: DRV, outputName: 'dev' } })
  t.equal(formatDoiPath(path), `build-trace-v2/${DRV}/dev.doi`)
  t.equal(outputPathName({ drvPath: DRV, outputName: 'out' }), 'bar')
  t.equal(outputPathName({ drvPath: DRV, outputName: 'dev' }), 'bar-dev')
})

t.test('output names follow Nix store path name rules', async (t) => {
  for (const name of ['out', 'dev', 'lib32', 'man-1', 'a.b', '.hidden', '..x', 'x?=+y', 'o'.repeat(211)]) {
    t.doesNotThrow(() => checkOutputName(name), name)
  }
  const refused: [string, RegExp][] = [
    ['', /empty/],
    ['o'.repeat(212), /longer than 211/],
    ['a/b', /character outside/],
    ['a b', /character outside/],
    ['a\u0000', /character outside/],
    ['%2F', /character outside/],
    ['ü', /character outside/],
    ['.', /not a valid store path name/],
    ['..', /not a valid store path name/],
    ['.-x', /not a valid store path name/],
    ['..-x', /not a valid store path name/],
    ['drv', /reserved/],
  ]
  for (const [name, message] of refused) t.throws(() => checkOutputName(name), { code: 'BAD_REALISATION', message }, JSON.stringify(name))
})

t.test('names that are not what Nix writes, or that would escape a prefix, are refused', async (t) => {
  const cases: [string, RegExp][] = [
    [`realisations/sha256:${HEX}!out`, /does not end in \.doi/],
    [`realisations/sha256:${HEX.toUpperCase()}!out.doi`, /64 lowercase hex/],
    [`realisations/sha256:${HEX.slice(1)}!out.doi`, /64 lowercase hex/],
    [`realisations/sha512:${HEX}!out.doi`, /64 lowercase hex/],
    [`realisations/${HEX}!out.doi`, /64 lowercase hex/],
    [`realisations/sha256:${HEX}out.doi`, /64 lowercase hex/],
    [`realisations/sha256:${HEX}!.doi`, /empty/],
    [`realisations/sha256:${HEX}!../x.doi`, /character outside/],
    [`realisations/sha256:${HEX}!a!b.doi`, /character outside/],
    [`realisations/../sha256:${HEX}!out.doi`, /64 lowercase hex/],
    [`build-trace-v2/${DRV}/out`, /does not end in \.doi/],
    [`build-trace-v2/${DRV}/x/out.doi`, /not <drv>\/<output>\.doi/],
    [`build-trace-v2/../${DRV}/out.doi`, /not <drv>\/<output>\.doi/],
    [`build-trace-v2/${DRV}/...doi`, /not a valid store path name/],
    [`build-trace-v2/${DRV}/..doi`, /not a valid store path name/],
    [`build-trace-v2/${DRV}/drv.doi`, /reserved/],
    [`build-trace-v2/${DRV}/.doi`, /empty/],
    [`build-trace-v2/g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-bar/out.doi`, /not a derivation/],
    [`build-trace-v2/..%2F${DRV}/out.doi`, /derivation path/],
    [`build-trace-v2/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-bar.drv/out.doi`, /derivation path/],
    [`build-trace-v2//out.doi`, /derivation path/],
    [`build-trace-v1/${DRV}/out.doi`, /neither/],
    [`nar/x.doi`, /neither/],
  ]
  for (const [path, message] of cases) t.throws(() => parseDoiPath(path), { code: 'BAD_REALISATION', message }, path)
})

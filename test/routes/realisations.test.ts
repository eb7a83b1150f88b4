import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { brotliCompressSync } from 'node:zlib'
import t from 'tap'
import { parseBuildTraceEntry, renderBuildTraceValue, signBuildTraceEntry, validBuildTraceSignatures } from '../../src/nix/build-trace.ts'
import { parseRealisation, renderRealisation, signRealisation, validRealisationSignatures, type Realisation } from '../../src/nix/realisation.ts'
import { parseNarInfo } from '../../src/nix/narinfo.ts'
import { narInfoFingerprint } from '../../src/nix/narinfo-signing.ts'
import { formatPublicKey, formatSecretKey, generateSecretKey, signFingerprint } from '../../src/nix/signing.ts'
import { build } from '../helpers/app.ts'
import { OTHER_PATH_HASH, PATH_HASH, narOf, narinfoFor, type SampleNar } from '../helpers/nar-samples.ts'
import { makeGoldenTrees, tempDir } from '../helpers/trees.ts'

type App = Awaited<ReturnType<typeof build>>

const DRV_HASH = 'c27fc07b77aaba90e92d453f6ef6aa7f618e0fc8d258e64119a43d418ac311d4'
const DEP_HASH = '813d1dd45ca8c2dac784605374015e836b3e287aea3da6251d785df65eb854b5'
const id = (hash: string, output = 'out') => ({ drvHash: hash, outputName: output })
const realisationUrl = (hash: string, output = 'out') => `/realisations/sha256:${hash}!${output}.doi`
/** Output paths as narinfoFor names them: `<hash>-sample`. */
const OUT = `${PATH_HASH}-sample`
const DEP_OUT = `${OTHER_PATH_HASH}-sample`

function realisation(drvHash: string, outPath: string, dependentRealisations: Record<string, string> = {}): Realisation {
  return { id: id(drvHash), outPath, signatures: [], dependentRealisations }
}

async function setUp(t: Parameters<typeof build>[0], overrides: Parameters<typeof build>[1] = {}): Promise<{ app: App; nar: SampleNar }> {
  const app = await build(t, overrides)
  const nar = await narOf((await makeGoldenTrees(await tempDir(t))).mixed as string)
  return { app, nar }
}

/** Pushes the store path `<hash>-sample` as Nix does before any realisation that points at it. */
async function pushPath(app: App, nar: SampleNar, hash: string): Promise<void> {
  await app.inject({ method: 'PUT', url: `/nar/${nar.hash}.nar`, payload: nar.bytes })
  const response = await app.inject({ method: 'PUT', url: `/${hash}.narinfo`, payload: narinfoFor(nar, hash) })
  if (response.statusCode !== 204) throw new Error(`narinfo upload failed: ${response.body}`)
}

const put = (app: App, url: string, body: string, headers: Record<string, string> = {}) =>
  app.inject({ method: 'PUT', url, payload: body, headers: { 'content-type': 'application/json', ...headers } })

t.test('realisations (Nix ≤ 2.34): the output path first, then its realisation, signed by the server', async (t) => {
  const dir = await tempDir(t)
  const key = generateSecretKey('cache.test-1')
  await writeFile(join(dir, 'key'), formatSecretKey(key))
  const { app, nar } = await setUp(t, { signingKeyFiles: [join(dir, 'key')], narinfoMaxAge: 99 })
  const dep = realisation(DEP_HASH, DEP_OUT)
  const top = realisation(DRV_HASH, OUT, { [`sha256:${DEP_HASH}!out`]: DEP_OUT })

  const early = await put(app, realisationUrl(DEP_HASH), renderRealisation(dep))
  t.equal(early.statusCode, 400, 'the output path is not here yet')
  t.match(early.body, /output path .* is not in this cache/)
  await pushPath(app, nar, OTHER_PATH_HASH)
  await pushPath(app, nar, PATH_HASH)
  const orphan = await put(app, realisationUrl(DRV_HASH), renderRealisation(top))
  t.equal(orphan.statusCode, 400, 'the realisation it depends on is not here yet')
  t.match(orphan.body, /depends on sha256:813d/)

  t.equal((await put(app, realisationUrl(DEP_HASH), renderRealisation(dep))).statusCode, 204)
  t.equal((await put(app, realisationUrl(DRV_HASH), renderRealisation(top))).statusCode, 204)

  const get = await app.inject({ url: realisationUrl(DRV_HASH) })
  t.equal(get.statusCode, 200)
  t.match(get.headers['content-type'], /^application\/json/)
  t.equal(get.headers['cache-control'], 'public, max-age=99')
  const served = parseRealisation(get.body, id(DRV_HASH))
  t.same(served.dependentRealisations, top.dependentRealisations)
  t.equal(served.outPath, OUT)
  t.equal(validRealisationSignatures(served, [key.publicKey]).length, 1, 'signed by the server key over what Nix signs')
  t.equal(get.body, renderRealisation(served), 'in the byte form Nix writes')
  const head = await app.inject({ method: 'HEAD', url: realisationUrl(DRV_HASH) })
  t.equal(head.statusCode, 200)
  t.equal(head.body, '')
  t.equal((await app.inject({ url: realisationUrl(DRV_HASH, 'dev') })).statusCode, 404)
  t.equal((await app.inject({ method: 'HEAD', url: realisationUrl(DRV_HASH, 'dev') })).statusCode, 404)
})

t.test('a realisation is immutable, gains signatures, and is checked', async (t) => {
  const uploader = generateSecretKey('uploader-1')
  const { app, nar } = await setUp(t)
  await pushPath(app, nar, PATH_HASH)
  await pushPath(app, nar, OTHER_PATH_HASH)
  const first = realisation(DRV_HASH, OUT)
  t.equal((await put(app, realisationUrl(DRV_HASH), renderRealisation(first))).statusCode, 204)
  t.equal((await put(app, realisationUrl(DRV_HASH), renderRealisation(first))).statusCode, 204, 'idempotent')
  const signed = signRealisation(first, [uploader])
  t.equal((await put(app, realisationUrl(DRV_HASH), renderRealisation(signed))).statusCode, 204)
  t.same(parseRealisation((await app.inject({ url: realisationUrl(DRV_HASH) })).body, id(DRV_HASH)).signatures, signed.signatures, 'the new signature is kept')
  const conflict = await put(app, realisationUrl(DRV_HASH), renderRealisation(realisation(DRV_HASH, DEP_OUT)))
  t.equal(conflict.statusCode, 409)
  t.match(conflict.body, new RegExp(`output path ${OUT}, not ${DEP_OUT}`))

  const cases: [string, string, string, number][] = [
    ['not JSON', realisationUrl(DEP_HASH), '{', 400],
    ['id of another derivation', realisationUrl(DEP_HASH), renderRealisation(first), 400],
    ['unknown field', realisationUrl(DEP_HASH), renderRealisation(realisation(DEP_HASH, OUT)).replace('{', '{"extra":1,'), 400],
    ['bad output path', realisationUrl(DEP_HASH), renderRealisation(realisation(DEP_HASH, OUT)).replace(OUT, '../etc'), 400],
    ['bad name', '/realisations/sha256:abc!out.doi', renderRealisation(first), 400],
    ['no .doi', `/realisations/sha256:${DEP_HASH}!out`, renderRealisation(realisation(DEP_HASH, OUT)), 400],
    ['too large', realisationUrl(DEP_HASH), `{"id":"${'x'.repeat(2 * 1024 * 1024)}"}`, 413],
  ]
  for (const [label, url, body, status] of cases) {
    const response = await put(app, url, body)
    t.equal(response.statusCode, status, `${label}: ${response.body.trim().slice(0, 120)}`)
  }
  t.equal((await app.inject({ url: realisationUrl(DEP_HASH) })).statusCode, 404, 'nothing refused became visible')
  t.equal((await app.inject({ url: '/realisations/nonsense.doi' })).statusCode, 400)

  const open = await setUp(t, { allowNarinfoOverwrite: true })
  await pushPath(open.app, open.nar, PATH_HASH)
  await pushPath(open.app, open.nar, OTHER_PATH_HASH)
  t.equal((await put(open.app, realisationUrl(DRV_HASH), renderRealisation(first))).statusCode, 204)
  t.equal((await put(open.app, realisationUrl(DRV_HASH), renderRealisation(realisation(DRV_HASH, DEP_OUT)))).statusCode, 204, 'allowNarinfoOverwrite covers realisations')
})

t.test('uploads can be required to carry a trusted signature; compressed uploads are decoded', async (t) => {
  const uploader = generateSecretKey('uploader-1')
  const { app, nar } = await setUp(t, { requireUploadSignature: true, trustedUploadKeys: [formatPublicKey(uploader.publicKey)] })
  await app.inject({ method: 'PUT', url: `/nar/${nar.hash}.nar`, payload: nar.bytes })
  const narinfo = narinfoFor(nar, PATH_HASH)
  const narinfoSignature = signFingerprint(uploader, narInfoFingerprint(parseNarInfo(narinfo)))
  t.equal((await app.inject({ method: 'PUT', url: `/${PATH_HASH}.narinfo`, payload: `${narinfo}Sig: ${narinfoSignature}\n` })).statusCode, 204)
  const unsigned = realisation(DRV_HASH, OUT)
  t.equal((await put(app, realisationUrl(DRV_HASH), renderRealisation(unsigned))).statusCode, 403)
  const body = brotliCompressSync(renderRealisation(signRealisation(unsigned, [uploader])))
  const response = await app.inject({ method: 'PUT', url: realisationUrl(DRV_HASH), payload: body, headers: { 'content-encoding': 'br' } })
  t.equal(response.statusCode, 204, response.body)
})

t.test('build traces (Nix ≥ 2.35): build-trace-v2/<drv>/<output>.doi', async (t) => {
  const dir = await tempDir(t)
  const key = generateSecretKey('cache.test-1')
  await writeFile(join(dir, 'key'), formatSecretKey(key))
  const { app, nar } = await setUp(t, { signingKeyFiles: [join(dir, 'key')] })
  const drv = `${OTHER_PATH_HASH}-sample.drv`
  const url = `/build-trace-v2/${drv}/out.doi`
  const entry = { key: { drvPath: drv, outputName: 'out' }, outPath: OUT, signatures: [] }
  t.equal((await put(app, url, renderBuildTraceValue(entry))).statusCode, 400, 'the output path first')
  await pushPath(app, nar, PATH_HASH)
  const uploader = generateSecretKey('uploader-1')
  const keyed = JSON.stringify({ key: entry.key, value: { outPath: OUT, signatures: signBuildTraceEntry(entry, [uploader]).signatures.map((signature) => ({ keyName: 'uploader-1', sig: signature.slice('uploader-1:'.length) })) } })
  const response = await put(app, url, keyed)
  t.equal(response.statusCode, 204, `the keyed form is accepted too: ${response.body}`)
  const get = await app.inject({ url })
  t.equal(get.statusCode, 200)
  const served = parseBuildTraceEntry(get.body, entry.key)
  t.equal(served.outPath, OUT)
  t.equal(validBuildTraceSignatures(served, [key.publicKey]).length, 1, 'signed by the server')
  t.equal(validBuildTraceSignatures(served, [uploader.publicKey]).length, 1, "the uploader's signature is kept")
  t.same(Object.keys(JSON.parse(get.body) as object), ['outPath', 'signatures'], 'served as the value Nix ≥ 2.35 reads')
  t.equal((await app.inject({ method: 'HEAD', url })).statusCode, 200)
  t.equal((await put(app, `/build-trace-v2/${drv}/dev.doi`, renderBuildTraceValue({ ...entry, key: { drvPath: drv, outputName: 'dev' } }))).statusCode, 400, 'an output named unlike its derivation output')
  t.equal((await app.inject({ url: `/build-trace-v2/${OTHER_PATH_HASH}-sample/out.doi` })).statusCode, 400, 'not a derivation')
  t.equal((await app.inject({ url: `/build-trace-v2/${drv}/dev.doi` })).statusCode, 404)
})

import { execFileSync, spawnSync } from 'node:child_process'
import { brotliCompressSync, deflateSync, gunzipSync, gzipSync } from 'node:zlib'
import lzma from 'lzma-native'
import t from 'tap'
import { parseNarInfo } from '../../src/nix/narinfo.ts'
import { validNarInfoSignatures } from '../../src/nix/narinfo-signing.ts'
import { formatSecretKey, generateSecretKey, signFingerprint } from '../../src/nix/signing.ts'
import { narInfoFingerprint } from '../../src/nix/narinfo-signing.ts'
import { build } from '../helpers/app.ts'
import { OTHER_PATH_HASH, PATH_HASH, narOf, narinfoFor, type SampleNar } from '../helpers/nar-samples.ts'
import { makeGoldenTrees, tempDir } from '../helpers/trees.ts'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'

async function sample(t: Parameters<typeof build>[0]): Promise<SampleNar> {
  const trees = await makeGoldenTrees(await tempDir(t))
  return narOf(trees.mixed as string)
}

t.test('nix-cache-info', async (t) => {
  const app = await build(t, { priority: 30 })
  const response = await app.inject({ url: '/nix-cache-info' })
  t.equal(response.statusCode, 200)
  t.equal(response.body, 'StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 30\n')
  t.match(response.headers['content-type'], /^text\/x-nix-cache-info/)
})

t.test('a narinfo whose reference is not in the cache is refused', async (t) => {
  const app = await build(t)
  const nar = await sample(t)
  t.equal((await app.inject({ method: 'PUT', url: `/nar/${nar.hash}.nar`, payload: nar.bytes })).statusCode, 201)
  const put = await app.inject({ method: 'PUT', url: `/${PATH_HASH}.narinfo`, payload: narinfoFor(nar, PATH_HASH, `References: ${OTHER_PATH_HASH}-dep`).replace('References: \n', '') })
  t.equal(put.statusCode, 400)
  t.match(put.body, /reference wpjqh28ynj0kdpgv9bbmhy126hp7rkxf is not in this cache/)
  t.equal((await app.inject({ url: `/${PATH_HASH}.narinfo` })).statusCode, 404)
})

t.test('put a narinfo after its NAR; get it back signed', async (t) => {
  const dir = await tempDir(t)
  const key = generateSecretKey('cache.test-1')
  await writeFile(join(dir, 'key'), formatSecretKey(key))
  const app = await build(t, { signingKeyFiles: [join(dir, 'key')], narinfoMaxAge: 1234, notFoundMaxAge: 7 })
  const nar = await sample(t)

  const missing = await app.inject({ url: `/${PATH_HASH}.narinfo` })
  t.equal(missing.statusCode, 404)
  t.equal(missing.headers['cache-control'], 'public, max-age=7', 'a 404 is cached briefly')
  t.equal((await app.inject({ method: 'HEAD', url: `/${PATH_HASH}.narinfo` })).statusCode, 404)

  t.equal((await app.inject({ method: 'PUT', url: '/nar/upload.nar', payload: nar.bytes })).statusCode, 201)
  // Its reference goes first, as nix copy does: a narinfo whose closure is incomplete is refused.
  t.equal((await app.inject({ method: 'PUT', url: `/${OTHER_PATH_HASH}.narinfo`, payload: narinfoFor(nar, OTHER_PATH_HASH) })).statusCode, 204)
  const uploaded = narinfoFor(nar, PATH_HASH, `References: ${OTHER_PATH_HASH}-dep ${PATH_HASH}-sample\nDeriver: ${OTHER_PATH_HASH}-sample.drv\nSystem: x86_64-linux\nSig: someone:${Buffer.alloc(64, 3).toString('base64')}`).replace('References: \n', '')
  const put = await app.inject({ method: 'PUT', url: `/${PATH_HASH}.narinfo`, payload: uploaded, headers: { 'content-type': 'text/x-nix-narinfo' } })
  t.equal(put.statusCode, 204, put.body)

  const get = await app.inject({ url: `/${PATH_HASH}.narinfo` })
  t.equal(get.statusCode, 200)
  t.equal(get.headers['cache-control'], 'public, max-age=1234')
  t.match(get.headers['content-type'], /^text\/x-nix-narinfo/)
  const info = parseNarInfo(get.body)
  t.equal(info.url, `nar/${nar.hash}.nar`)
  t.equal(info.compression, 'none')
  t.equal(info.narSize, nar.bytes.length)
  t.same(info.references, [`${PATH_HASH}-sample`, `${OTHER_PATH_HASH}-dep`], "sorted, as Nix keeps them")
  t.equal(info.deriver, `${OTHER_PATH_HASH}-sample.drv`)
  t.equal(info.system, 'x86_64-linux')
  t.equal(info.signatures.length, 2, 'the uploaded signature is kept, ours added')
  t.equal(validNarInfoSignatures(info, [key.publicKey]).length, 1, 'our signature verifies')
  t.notOk(info.fileHash, 'no FileHash: the NAR is served uncompressed')

  const head = await app.inject({ method: 'HEAD', url: `/${PATH_HASH}.narinfo` })
  t.equal(head.statusCode, 200)
  t.equal(head.body, '')
  const gzipped = await app.inject({ url: `/${PATH_HASH}.narinfo`, headers: { 'accept-encoding': 'gzip' } })
  t.equal(gzipped.headers['content-encoding'], 'gzip')
  t.equal(gunzipSync(gzipped.rawPayload).toString(), get.body)
  t.equal(gzipped.headers.vary, 'Accept-Encoding')
})

t.test('bad names and bad narinfos are refused; nothing becomes visible', async (t) => {
  const app = await build(t)
  const nar = await sample(t)
  await app.inject({ method: 'PUT', url: '/nar/upload.nar', payload: nar.bytes })
  for (const name of ['short', 'e'.repeat(32), 'A'.repeat(32), `${PATH_HASH}x`]) {
    t.equal((await app.inject({ url: `/${name}.narinfo` })).statusCode, 400, `GET ${name}.narinfo`)
  }
  const good = narinfoFor(nar, PATH_HASH)
  const cases: [string, string, number][] = [
    ['unknown NarHash', good.replace(/NarHash: sha256:\w+/, `NarHash: sha256:${'0'.repeat(52)}`), 400],
    ['wrong NarSize', good.replace(/NarSize: \d+/, `NarSize: ${nar.bytes.length + 8}`), 400],
    ['StorePath elsewhere', good.replace(`/nix/store/${PATH_HASH}`, `/nix/store/${OTHER_PATH_HASH}`), 400],
    ['bad reference', good.replace('References: ', 'References: ../../etc/passwd'), 400],
    ['garbage', 'hello world', 400],
    ['empty', '', 400],
    ['no NarHash', good.replace(/NarHash: .*\n/, ''), 400],
    ['too large', good + `X-Padding: ${'x'.repeat(1024 * 1024)}\n`, 413],
  ]
  for (const [label, body, status] of cases) {
    const response = await app.inject({ method: 'PUT', url: `/${PATH_HASH}.narinfo`, payload: body, headers: { 'content-type': 'text/x-nix-narinfo' } })
    t.equal(response.statusCode, status, `${label}: ${response.body.trim().slice(0, 100)}`)
    t.equal((await app.inject({ url: `/${PATH_HASH}.narinfo` })).statusCode, 404, `${label}: nothing visible`)
  }
  t.equal((await app.inject({ method: 'PUT', url: `/bad.narinfo`, payload: good })).statusCode, 400)
})

t.test('uploads can be required to carry a trusted signature', async (t) => {
  const trusted = generateSecretKey('uploader-1')
  const app = await build(t, { requireUploadSignature: true, trustedUploadKeys: [`uploader-1:${Buffer.from(trusted.publicKey.raw).toString('base64')}`] })
  const nar = await sample(t)
  await app.inject({ method: 'PUT', url: '/nar/upload.nar', payload: nar.bytes })
  const unsigned = narinfoFor(nar, PATH_HASH)
  t.equal((await app.inject({ method: 'PUT', url: `/${PATH_HASH}.narinfo`, payload: unsigned })).statusCode, 403)
  const signature = signFingerprint(trusted, narInfoFingerprint(parseNarInfo(unsigned)))
  t.equal((await app.inject({ method: 'PUT', url: `/${PATH_HASH}.narinfo`, payload: `${unsigned}Sig: ${signature}\n` })).statusCode, 204)
})

/** `text` compressed by the reference implementations, as a client would send it. */
async function encoded(text: string, encoding: string): Promise<Buffer> {
  const bytes = Buffer.from(text)
  switch (encoding) {
    case 'br':
      return brotliCompressSync(bytes)
    case 'gzip':
      return gzipSync(bytes)
    case 'deflate':
      return deflateSync(bytes)
    case 'xz':
      return new Promise<Buffer>((resolve) => lzma.compress(bytes, 6, resolve))
    case 'bzip2':
      return execFileSync('bzip2', ['-c'], { input: bytes })
    case 'zstd':
      return execFileSync('zstd', ['-c', '-q'], { input: bytes })
    default:
      return bytes
  }
}

t.test('narinfo uploads may be compressed (narinfo-compression), and the same narinfo again is fine', async (t) => {
  const app = await build(t)
  const nar = await sample(t)
  await app.inject({ method: 'PUT', url: '/nar/upload.nar', payload: nar.bytes })
  const narinfo = narinfoFor(nar, PATH_HASH)
  const encodings = ['identity', 'br', 'gzip', 'x-gzip', 'deflate', 'xz', 'bzip2']
  if (spawnSync('zstd', ['--version']).status === 0) encodings.push('zstd')
  for (const encoding of encodings) {
    const payload = await encoded(narinfo, encoding.replace(/^x-/, ''))
    const response = await app.inject({ method: 'PUT', url: `/${PATH_HASH}.narinfo`, payload, headers: { 'content-type': 'text/x-nix-narinfo', 'content-encoding': encoding } })
    t.equal(response.statusCode, 204, `Content-Encoding: ${encoding} ${response.body}`)
  }
  t.equal(parseNarInfo((await app.inject({ url: `/${PATH_HASH}.narinfo` })).body).narSize, nar.bytes.length)
  for (const encoding of ['compress', 'gzip, br', 'lz4']) {
    const response = await app.inject({ method: 'PUT', url: `/${PATH_HASH}.narinfo`, payload: narinfo, headers: { 'content-encoding': encoding } })
    t.equal(response.statusCode, 415, `Content-Encoding: ${encoding}`)
  }
  const lying = await app.inject({ method: 'PUT', url: `/${PATH_HASH}.narinfo`, payload: narinfo, headers: { 'content-encoding': 'br' } })
  t.equal(lying.statusCode, 400, 'a body that is not what its Content-Encoding says')
  // 100 MiB of zeros after a valid narinfo: a few KiB on the wire, refused once 1 MiB is decoded.
  const bomb = gzipSync(Buffer.concat([Buffer.from(narinfo), Buffer.alloc(100 * 2 ** 20)]))
  const tooLarge = await app.inject({ method: 'PUT', url: `/${PATH_HASH}.narinfo`, payload: bomb, headers: { 'content-encoding': 'gzip' } })
  t.equal(tooLarge.statusCode, 413)
  t.match(tooLarge.body, /narinfo/)
})

t.test('a store path is immutable: another NarHash is a 409 unless overwrites are allowed', async (t) => {
  const trees = await makeGoldenTrees(await tempDir(t))
  const first = await narOf(trees.mixed as string)
  const second = await narOf(trees.executable as string)
  const setUp = async (overrides: Parameters<typeof build>[1] = {}) => {
    const app = await build(t, overrides)
    for (const nar of [first, second]) await app.inject({ method: 'PUT', url: `/nar/${nar.hash}.nar`, payload: nar.bytes })
    t.equal((await app.inject({ method: 'PUT', url: `/${PATH_HASH}.narinfo`, payload: narinfoFor(first, PATH_HASH) })).statusCode, 204)
    return app
  }
  const app = await setUp()
  const other = await app.inject({ method: 'PUT', url: `/${PATH_HASH}.narinfo`, payload: narinfoFor(second, PATH_HASH) })
  t.equal(other.statusCode, 409)
  t.match(other.body, new RegExp(`already stored with NarHash sha256:${first.hash}, not sha256:${second.hash}`))
  const otherReferences = await app.inject({ method: 'PUT', url: `/${PATH_HASH}.narinfo`, payload: narinfoFor(first, PATH_HASH).replace('References: ', `References: ${OTHER_PATH_HASH}-dep`) })
  t.equal(otherReferences.statusCode, 409)
  t.match(otherReferences.body, /other references/)
  t.match((await app.inject({ url: `/${PATH_HASH}.narinfo` })).body, `NarHash: sha256:${first.hash}`, 'the first narinfo stands')

  // The same narinfo with a further signature (what `nix store sign --store` uploads) adds it.
  const signer = generateSecretKey('signer-1')
  const signature = signFingerprint(signer, narInfoFingerprint(parseNarInfo(narinfoFor(first, PATH_HASH))))
  t.equal((await app.inject({ method: 'PUT', url: `/${PATH_HASH}.narinfo`, payload: `${narinfoFor(first, PATH_HASH)}Sig: ${signature}\n` })).statusCode, 204)
  t.equal((await app.inject({ method: 'PUT', url: `/${PATH_HASH}.narinfo`, payload: narinfoFor(first, PATH_HASH) })).statusCode, 204, 'idempotent')
  t.same(parseNarInfo((await app.inject({ url: `/${PATH_HASH}.narinfo` })).body).signatures, [signature], 'signatures accumulate')

  const open = await setUp({ allowNarinfoOverwrite: true })
  t.equal((await open.inject({ method: 'PUT', url: `/${PATH_HASH}.narinfo`, payload: narinfoFor(second, PATH_HASH) })).statusCode, 204)
  t.match((await open.inject({ url: `/${PATH_HASH}.narinfo` })).body, `NarHash: sha256:${second.hash}`, 'allowNarinfoOverwrite: the new one replaces it')
})

t.test('signatures are bounded by maxSignatures, ours included', async (t) => {
  const dir = await tempDir(t)
  await writeFile(join(dir, 'key'), formatSecretKey(generateSecretKey('cache.test-1')))
  const app = await build(t, { maxSignatures: 3, signingKeyFiles: [join(dir, 'key')] })
  const nar = await sample(t)
  await app.inject({ method: 'PUT', url: '/nar/upload.nar', payload: nar.bytes })
  const sig = (name: string): string => `Sig: ${name}:${Buffer.alloc(64, name.length).toString('base64')}\n`
  const tooMany = await app.inject({ method: 'PUT', url: `/${PATH_HASH}.narinfo`, payload: narinfoFor(nar, PATH_HASH) + sig('a') + sig('bb') + sig('ccc') + sig('dddd') })
  t.equal(tooMany.statusCode, 400)
  t.equal((await app.inject({ method: 'PUT', url: `/${PATH_HASH}.narinfo`, payload: narinfoFor(nar, PATH_HASH) + sig('a') + sig('bb') })).statusCode, 204)
  t.equal((await app.inject({ method: 'PUT', url: `/${PATH_HASH}.narinfo`, payload: narinfoFor(nar, PATH_HASH) + sig('ccc') })).statusCode, 204)
  const kept = parseNarInfo((await app.inject({ url: `/${PATH_HASH}.narinfo` })).body).signatures
  t.equal(kept.length, 3)
  t.ok(kept.some((signature) => signature.startsWith('cache.test-1:')), 'ours is always there')
})

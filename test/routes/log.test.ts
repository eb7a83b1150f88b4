import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFile, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { brotliCompressSync, brotliDecompressSync, gunzipSync, gzipSync } from 'node:zlib'
import t from 'tap'
import { build } from '../helpers/app.ts'
import { OTHER_PATH_HASH, PATH_HASH } from '../helpers/nar-samples.ts'
import { tempDir } from '../helpers/trees.ts'

const DRV = `${PATH_HASH}-hello-2.12.drv`
const url = `/log/${DRV}`
const text = Buffer.from(Array.from({ length: 2000 }, (_, line) => `building line ${line}: gcc -O2 -c hello.c\n`).join(''))

t.test('a build log goes in and comes out, in whatever encoding the client takes', async (t) => {
  const app = await build(t, { narinfoMaxAge: 77 })
  t.equal((await app.inject({ url })).statusCode, 404)
  t.equal((await app.inject({ method: 'HEAD', url })).statusCode, 404)
  const put = await app.inject({ method: 'PUT', url, payload: text, headers: { 'content-type': 'text/plain; charset=utf-8' } })
  t.equal(put.statusCode, 204, put.body)

  const plain = await app.inject({ url })
  t.equal(plain.statusCode, 200)
  t.equal(plain.headers['content-type'], 'text/plain; charset=utf-8')
  t.notOk(plain.headers['content-encoding'], 'a client that accepts no encoding (Nix) gets the text')
  t.equal(plain.headers['content-length'], String(text.length))
  t.ok(plain.rawPayload.equals(text))
  t.equal(plain.headers['cache-control'], 'public, max-age=77')
  t.equal(plain.headers.vary, 'Accept-Encoding')

  const br = await app.inject({ url, headers: { 'accept-encoding': 'deflate, gzip, br, zstd' } })
  t.equal(br.headers['content-encoding'], 'br', 'what curl --compressed accepts: the stored bytes as they are')
  t.ok(br.rawPayload.length < text.length / 5, 'stored compressed')
  t.equal(br.headers['content-length'], String(br.rawPayload.length))
  t.ok(brotliDecompressSync(br.rawPayload).equals(text))

  const gzip = await app.inject({ url, headers: { 'accept-encoding': 'gzip, br;q=0' } })
  t.equal(gzip.headers['content-encoding'], 'gzip')
  t.ok(gunzipSync(gzip.rawPayload).equals(text))
  t.notOk((await app.inject({ url, headers: { 'accept-encoding': 'identity' } })).headers['content-encoding'])

  for (const headers of [{}, { 'accept-encoding': 'br' }, { 'accept-encoding': 'gzip' }]) {
    const head = await app.inject({ method: 'HEAD', url, headers })
    const get = await app.inject({ url, headers })
    t.equal(head.statusCode, 200)
    t.equal(head.rawPayload.length, 0)
    for (const name of ['content-type', 'content-encoding', 'content-length', 'etag']) t.equal(head.headers[name], get.headers[name], `HEAD ${JSON.stringify(headers)}: ${name}`)
  }
  t.equal((await app.inject({ url, headers: { 'if-none-match': plain.headers.etag as string } })).statusCode, 304)
})

t.test('log uploads may be compressed, are bounded, and are stored once per content', async (t) => {
  const dir = await tempDir(t)
  const app = await build(t, { maxLogSize: 100_000, stores: { stores: {}, root: `file://${dir}` } })
  const drvs = [`${PATH_HASH}-a.drv`, `${OTHER_PATH_HASH}-b.drv`, `${PATH_HASH}-c+d=e?f.drv`]
  const bodies: [string, Buffer][] = [
    ['br', brotliCompressSync(text)],
    ['gzip', gzipSync(text)],
    ['bzip2', execFileSync('bzip2', ['-c'], { input: text })],
  ]
  for (const [index, [encoding, payload]] of bodies.entries()) {
    const response = await app.inject({ method: 'PUT', url: `/log/${encodeURIComponent(drvs[index] as string)}`, payload, headers: { 'content-encoding': encoding } })
    t.equal(response.statusCode, 204, `${encoding}: ${response.body}`)
  }
  for (const drv of drvs) t.ok((await app.inject({ url: `/log/${encodeURIComponent(drv)}` })).rawPayload.equals(text), `${drv} reads back`)
  const stored = (await readdir(join(dir, 'logs'), { recursive: true, withFileTypes: true })).filter((entry) => entry.isFile())
  t.equal(stored.length, 1, 'three derivations with the same log: one stored log')

  const tooLarge = await app.inject({ method: 'PUT', url: `/log/${PATH_HASH}-big.drv`, payload: gzipSync(Buffer.alloc(200_000, 'y')), headers: { 'content-encoding': 'gzip' } })
  t.equal(tooLarge.statusCode, 413)
  t.match(tooLarge.body, /build log/)
  t.equal((await app.inject({ url: `/log/${PATH_HASH}-big.drv` })).statusCode, 404, 'nothing recorded')
  const binary = randomBytes(50_000)
  t.equal((await app.inject({ method: 'PUT', url: `/log/${PATH_HASH}-binary.drv`, payload: binary })).statusCode, 204, 'a log is bytes, not necessarily text')
  t.ok((await app.inject({ url: `/log/${PATH_HASH}-binary.drv` })).rawPayload.equals(binary))
  t.equal((await app.inject({ method: 'PUT', url: `/log/${PATH_HASH}-empty.drv`, payload: '' })).statusCode, 204, 'an empty log (a quiet builder)')
  t.equal((await app.inject({ url: `/log/${PATH_HASH}-empty.drv` })).body, '')
})

t.test('log names are derivations', async (t) => {
  const app = await build(t)
  for (const name of [`${PATH_HASH}-hello`, 'hello.drv', `${PATH_HASH}-..drv`, `${PATH_HASH}-a%2Fb.drv`]) {
    const response = await app.inject({ method: 'PUT', url: `/log/${name}`, payload: 'x' })
    t.equal(response.statusCode, 400, `PUT ${name}: ${response.body.trim()}`)
    t.equal((await app.inject({ url: `/log/${name}` })).statusCode, 400, `GET ${name}`)
  }
  t.equal((await app.inject({ method: 'PUT', url, payload: 'x', headers: { 'content-encoding': 'compress' } })).statusCode, 415)
})

t.test('a stored log that was altered is never served as the log', async (t) => {
  const dir = await tempDir(t)
  const app = await build(t, { stores: { stores: {}, root: `file://${dir}` } })
  const blobs = async (): Promise<string[]> =>
    (await readdir(join(dir, 'logs'), { recursive: true, withFileTypes: true })).filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath, entry.name))
  // Incompressible logs of one length are stored with one size: only the digest can tell them apart.
  const log = randomBytes(100_000)
  const other = randomBytes(100_000)
  t.equal((await app.inject({ method: 'PUT', url, payload: log })).statusCode, 204)
  const [path] = await blobs()
  if (path === undefined) throw new Error('no stored log')
  t.equal((await app.inject({ method: 'PUT', url: `/log/${OTHER_PATH_HASH}-other.drv`, payload: other })).statusCode, 204)
  const forgery = (await blobs()).find((candidate) => candidate !== path)
  if (forgery === undefined) throw new Error('no second stored log')
  const forged = await readFile(forgery)
  t.equal(forged.length, (await readFile(path)).length, 'the forgery has the stored size')
  await writeFile(path, forged)
  for (const headers of [{}, { 'accept-encoding': 'gzip' }]) {
    // Either an error status (nothing was sent yet) or a response broken off before its end.
    const outcome = await app.inject({ url, headers }).then(
      (response) => `status ${response.statusCode}`,
      (error: Error) => error.message,
    )
    t.match(outcome, /status 5\d\d|destroyed/, `${JSON.stringify(headers)}: ${outcome}`)
  }
  await writeFile(path, Buffer.alloc(3))
  t.equal((await app.inject({ url })).statusCode, 502, 'a stored log of the wrong size')
})

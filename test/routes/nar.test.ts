import { execFileSync, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { brotliCompressSync, brotliDecompressSync, gunzipSync, gzipSync } from 'node:zlib'
import t from 'tap'
import lzma from 'lzma-native'
import { encodeNixbase32 } from '../../src/nix/nixbase32.ts'
import { build } from '../helpers/app.ts'
import { narOf, type SampleNar } from '../helpers/nar-samples.ts'
import { makeGoldenTrees, tempDir } from '../helpers/trees.ts'

async function sample(t: Parameters<typeof build>[0]): Promise<SampleNar> {
  const trees = await makeGoldenTrees(await tempDir(t))
  return narOf(trees.mixed as string)
}

const hasZstd = spawnSync('zstd', ['--version']).status === 0

t.test('upload in every compression, then serve', async (t) => {
  const app = await build(t)
  const nar = await sample(t)
  const encodings: [string, () => Promise<Buffer>][] = [
    ['nar', async () => nar.bytes],
    ['nar.xz', () => new Promise<Buffer>((resolve) => lzma.compress(nar.bytes, 6, resolve))],
    ['nar.bz2', async () => execFileSync('bzip2', ['-c'], { input: nar.bytes })],
  ]
  if (hasZstd) encodings.push(['nar.zst', async () => execFileSync('zstd', ['-c', '-q'], { input: nar.bytes })])
  else t.comment('zstd is not installed: the .nar.zst upload is covered by the end-to-end test instead')
  for (const [suffix, encode] of encodings) {
    const name = `nar/upload${suffix.replace(/\W/g, '')}.${suffix}`
    t.equal((await app.inject({ method: 'HEAD', url: `/${name}` })).statusCode, 404, `${suffix}: HEAD before upload`)
    const body = await encode()
    const put = await app.inject({ method: 'PUT', url: `/${name}`, payload: body, headers: { 'content-type': 'application/x-nix-nar' } })
    t.equal(put.statusCode, 201, `${suffix}: accepted`)
    t.equal(put.json<{ narSize: number }>().narSize, nar.bytes.length)
    t.equal((await app.inject({ method: 'HEAD', url: `/${name}` })).statusCode, 200, `${suffix}: HEAD after upload`)
  }

  const url = `/nar/${nar.hash}.nar`
  const get = await app.inject({ method: 'GET', url })
  t.equal(get.statusCode, 200)
  t.ok(get.rawPayload.equals(nar.bytes), 'the NAR comes back byte for byte')
  t.equal(get.headers['content-length'], String(nar.bytes.length))
  t.equal(get.headers['accept-ranges'], 'bytes')
  t.equal(get.headers['content-type'], 'application/x-nix-nar')
  t.equal(get.headers['cache-control'], 'public, max-age=31536000, immutable')
  t.equal(get.headers.etag, `"${nar.hash}"`)
  t.notOk(get.headers['content-encoding'])

  const head = await app.inject({ method: 'HEAD', url })
  t.equal(head.statusCode, 200)
  t.equal(head.headers['content-length'], String(nar.bytes.length), 'HEAD says the exact size')
  t.equal(head.rawPayload.length, 0)
  t.equal((await app.inject({ method: 'HEAD', url: `/nar/${nar.hash}.nar.xz` })).statusCode, 404, 'only names that were uploaded exist')

  t.equal((await app.inject({ url, headers: { 'if-none-match': `"${nar.hash}"` } })).statusCode, 304)
})

t.test('ranges', async (t) => {
  const app = await build(t)
  const nar = await sample(t)
  await app.inject({ method: 'PUT', url: '/nar/x.nar', payload: nar.bytes })
  const url = `/nar/${nar.hash}.nar`
  const size = nar.bytes.length
  // [Range header, status, first byte, end (exclusive)] of the answer.
  const cases: [string, number, number, number][] = [
    ['bytes=0-0', 206, 0, 1],
    ['bytes=0-99', 206, 0, 100],
    [`bytes=${size - 1}-`, 206, size - 1, size],
    ['bytes=-10', 206, size - 10, size],
    [`bytes=-${size + 10}`, 206, 0, size],
    [`bytes=100-${size + 1000}`, 206, 100, size],
    [`bytes=${size}-`, 416, 0, 0],
    [`bytes=${size + 5}-${size + 9}`, 416, 0, 0],
    ['bytes=-0', 416, 0, 0],
    ['bytes=5-2', 200, 0, size],
    ['bytes=0-1,5-6', 200, 0, size],
    ['items=0-5', 200, 0, size],
  ]
  for (const [range, status, start, end] of cases) {
    const response = await app.inject({ url, headers: { range } })
    t.equal(response.statusCode, status, `${range}: ${status}`)
    if (status === 416) {
      t.equal(response.headers['content-range'], `bytes */${size}`)
      continue
    }
    t.ok(response.rawPayload.equals(nar.bytes.subarray(start, end)), `${range}: the right bytes`)
    t.equal(response.headers['content-length'], String(end - start))
    if (status === 206) t.equal(response.headers['content-range'], `bytes ${start}-${end - 1}/${size}`)
  }
  const stale = await app.inject({ url, headers: { range: 'bytes=0-9', 'if-range': '"something-else"' } })
  t.equal(stale.statusCode, 200, 'If-Range that does not match: the whole NAR')
  const fresh = await app.inject({ url, headers: { range: 'bytes=0-9', 'if-range': `"${nar.hash}"` } })
  t.equal(fresh.statusCode, 206)
})

t.test('compression only where resume cannot break', async (t) => {
  const app = await build(t)
  const nar = await sample(t)
  await app.inject({ method: 'PUT', url: '/nar/x.nar', payload: nar.bytes })
  const url = `/nar/${nar.hash}.nar`
  const whole = await app.inject({ url, headers: { 'accept-encoding': 'gzip' } })
  t.equal(whole.headers['content-encoding'], 'gzip')
  t.notOk(whole.headers['content-length'])
  t.ok(gunzipSync(whole.rawPayload).equals(nar.bytes))
  const ranged = await app.inject({ url, headers: { 'accept-encoding': 'gzip', range: 'bytes=0-99' } })
  t.notOk(ranged.headers['content-encoding'], 'a ranged response is never encoded')
  t.equal(ranged.statusCode, 206)
  const off = await build(t, { compressNars: false })
  await off.inject({ method: 'PUT', url: '/nar/x.nar', payload: nar.bytes })
  t.notOk((await off.inject({ url, headers: { 'accept-encoding': 'gzip' } })).headers['content-encoding'], 'compressNars: false')
})

t.test('malformed uploads are refused and nothing becomes visible', async (t) => {
  const app = await build(t, { maxNarSize: 10_000 })
  const nar = await sample(t)
  const broken: [string, string, Buffer, number][] = [
    ['garbage', 'nar/a.nar', Buffer.from('this is not a NAR at all, not even close'), 400],
    ['truncated', 'nar/b.nar', nar.bytes.subarray(0, nar.bytes.length - 50), 400],
    ['trailing bytes', 'nar/c.nar', Buffer.concat([nar.bytes, Buffer.alloc(16)]), 400],
    ['not xz', 'nar/d.nar.xz', nar.bytes, 400],
    ['not bzip2', 'nar/e.nar.bz2', nar.bytes, 400],
    ['too large', 'nar/f.nar', Buffer.concat([nar.bytes, Buffer.alloc(20_000)]), 413],
    ['bad name', 'nar/../../etc.nar', nar.bytes, 404],
    ['bad suffix', 'nar/g.tar', nar.bytes, 400],
  ]
  for (const [label, name, payload, status] of broken) {
    const response = await app.inject({ method: 'PUT', url: `/${name}`, payload })
    t.equal(response.statusCode, status, `${label}: ${status} ${response.body.trim()}`)
    t.ok(response.body.length > 0, `${label}: says why`)
  }
  t.equal((await app.inject({ url: `/nar/${nar.hash}.nar` })).statusCode, 404, 'the NAR whose upload failed is not served')
  t.equal((await app.inject({ method: 'HEAD', url: '/nar/b.nar' })).statusCode, 404, 'nor reported as uploaded')
  t.equal((await app.inject({ url: '/nar/nonsense' })).statusCode, 404)
})

/** Decompresses with the reference tools, not with nixcas's own codec. */
function decompressWithTool(suffix: string, bytes: Buffer): Buffer {
  if (suffix === 'nar.br') return brotliDecompressSync(bytes)
  const tool = { 'nar.xz': 'xz', 'nar.bz2': 'bzip2', 'nar.zst': 'zstd' }[suffix]
  if (tool === undefined) return bytes
  return execFileSync(tool, ['-d', '-c'], { input: bytes, maxBuffer: 1 << 30 })
}

t.test('every name a NAR was uploaded under stays fetchable, in the compression its name says', async (t) => {
  const app = await build(t)
  const nar = await sample(t)
  const uploads: [string, Buffer][] = [
    ['nar.xz', await new Promise<Buffer>((resolve) => lzma.compress(nar.bytes, 6, resolve))],
    ['nar.bz2', execFileSync('bzip2', ['-c'], { input: nar.bytes })],
    ['nar.br', brotliCompressSync(nar.bytes)],
    ['nar', nar.bytes],
  ]
  if (hasZstd) uploads.push(['nar.zst', execFileSync('zstd', ['-c', '-q'], { input: nar.bytes })])
  for (const [suffix, body] of uploads) {
    // Nix names an upload by the hash of the compressed file, not of the NAR.
    const url = `/nar/${suffix.replace(/\W/g, '')}1zd4${'0'.repeat(40)}.${suffix}`
    t.equal((await app.inject({ method: 'PUT', url, payload: body })).statusCode, 201, `${suffix}: uploaded`)
    const get = await app.inject({ url })
    t.equal(get.statusCode, 200, `${suffix}: GET after upload`)
    t.equal(get.headers['content-type'], 'application/x-nix-nar')
    t.notOk(get.headers['content-encoding'], `${suffix}: the file itself is compressed, not the transfer`)
    t.ok(decompressWithTool(suffix, get.rawPayload).equals(nar.bytes), `${suffix}: decompresses to the NAR`)
    const head = await app.inject({ method: 'HEAD', url })
    t.equal(head.statusCode, 200)
    t.equal(head.rawPayload.length, 0)
    const ranged = await app.inject({ url, headers: { range: 'bytes=0-9' } })
    if (suffix === 'nar') {
      t.equal(ranged.statusCode, 206, 'an uncompressed name is the NAR: ranges work')
      t.ok(ranged.rawPayload.equals(nar.bytes.subarray(0, 10)))
    } else {
      t.equal(ranged.statusCode, 200, `${suffix}: made on the fly, so no ranges: the whole file`)
      t.notOk(ranged.headers['accept-ranges'])
      t.ok(decompressWithTool(suffix, ranged.rawPayload).equals(nar.bytes))
    }
  }
  t.equal((await app.inject({ url: `/nar/never${'0'.repeat(40)}.nar.xz` })).statusCode, 404, 'a name nothing was uploaded under')
})

t.test('gzip, which Nix uploads under a plain .nar name (its file hash), is told apart by its magic and served as gzip', async (t) => {
  const app = await build(t)
  const nar = await sample(t)
  const gzipped = gzipSync(nar.bytes)
  const fileHash = encodeNixbase32(createHash('sha256').update(gzipped).digest())
  const url = `/nar/${fileHash}.nar`
  const put = await app.inject({ method: 'PUT', url, payload: gzipped })
  t.equal(put.statusCode, 201, 'a name that looks like a NAR hash is not taken for one when the body is gzip')
  t.equal(put.json<{ narHash: string }>().narHash, `sha256:${nar.hash}`)
  const get = await app.inject({ url })
  t.equal(get.statusCode, 200)
  t.notOk(get.headers['accept-ranges'], 'made on the fly: no ranges')
  t.ok(gunzipSync(get.rawPayload).equals(nar.bytes), 'decompresses to the NAR')
  t.equal((await app.inject({ method: 'HEAD', url })).statusCode, 200)
  const plain = await app.inject({ url: `/nar/${nar.hash}.nar` })
  t.ok(plain.rawPayload.equals(nar.bytes), 'the NAR itself under its hash, as ever')
  t.equal((await app.inject({ url: `/nar/${encodeNixbase32(Buffer.alloc(32, 7))}.nar` })).statusCode, 404, 'a hash nothing has')
  // Empty and one-byte bodies under a plain name: refused, nothing visible.
  for (const body of [Buffer.alloc(0), Buffer.from([0x1f]), Buffer.from([0x1f, 0x8b])]) {
    const refused = await app.inject({ method: 'PUT', url: '/nar/short.nar', payload: body })
    t.equal(refused.statusCode, 400, `${body.length} bytes: refused`)
  }
  t.equal((await app.inject({ url: '/nar/short.nar' })).statusCode, 404)
})

t.test('NAR URLs with a query string are served like the plain ones', async (t) => {
  const app = await build(t)
  const nar = await sample(t)
  await app.inject({ method: 'PUT', url: '/nar/q.nar.bz2', payload: execFileSync('bzip2', ['-c'], { input: nar.bytes }) })
  const plain = await app.inject({ url: `/nar/${nar.hash}.nar?hash=${nar.hash}` })
  t.equal(plain.statusCode, 200)
  t.ok(plain.rawPayload.equals(nar.bytes))
  const head = await app.inject({ method: 'HEAD', url: `/nar/${nar.hash}.nar?hash=${nar.hash}` })
  t.equal(head.headers['content-length'], String(nar.bytes.length))
  const compressed = await app.inject({ url: '/nar/q.nar.bz2?hash=anything' })
  t.ok(decompressWithTool('nar.bz2', compressed.rawPayload).equals(nar.bytes))
})

t.test('NAR uploads may carry a Content-Encoding of their own', async (t) => {
  const app = await build(t)
  const nar = await sample(t)
  const xz = await new Promise<Buffer>((resolve) => lzma.compress(nar.bytes, 1, resolve))
  const encoded: [string, string, Buffer][] = [
    ['nar/gz.nar', 'gzip', gzipSync(nar.bytes)],
    ['nar/br.nar.xz', 'br', brotliCompressSync(xz)],
    ['nar/id.nar', 'identity', nar.bytes],
  ]
  for (const [name, encoding, payload] of encoded) {
    const response = await app.inject({ method: 'PUT', url: `/${name}`, payload, headers: { 'content-encoding': encoding } })
    t.equal(response.statusCode, 201, `${name} with ${encoding}: ${response.body}`)
    t.equal(response.json<{ narSize: number }>().narSize, nar.bytes.length)
  }
  const refused = await app.inject({ method: 'PUT', url: '/nar/lz.nar', payload: nar.bytes, headers: { 'content-encoding': 'lz4' } })
  t.equal(refused.statusCode, 415)
  t.match(refused.body, /Content-Encoding "lz4"/)
  t.equal((await app.inject({ method: 'HEAD', url: '/nar/lz.nar' })).statusCode, 404, 'nothing was recorded')
  const garbled = await app.inject({ method: 'PUT', url: '/nar/bad.nar', payload: nar.bytes, headers: { 'content-encoding': 'gzip' } })
  t.equal(garbled.statusCode, 400)
  t.match(garbled.body, /not valid gzip/)
})

import { randomBytes } from 'node:crypto'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import t from 'tap'
import type { CodecMethod } from '../../src/codec/methods.ts'
import { parseNarInfo, renderNarInfo } from '../../src/nix/narinfo.ts'
import { signNarInfo } from '../../src/nix/narinfo-signing.ts'
import { formatPublicKey, generateSecretKey } from '../../src/nix/signing.ts'
import { narOf } from '../helpers/nar-samples.ts'
import { startFaultyProxy } from '../helpers/faulty-proxy.ts'
import { startNginx, skipWithoutNginx } from '../helpers/nginx.ts'
import { serve } from '../helpers/nix-client.ts'
import { tempDir } from '../helpers/trees.ts'
import { initCache, newPathHash, publish } from '../helpers/upstream-cache.ts'

/** GETs a URL; the body, or the error a response cut short ends in. */
async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body?: Buffer; error?: unknown }> {
  const response = await fetch(url, { headers: { 'accept-encoding': 'identity', ...headers } })
  try {
    return { status: response.status, body: Buffer.from(await response.arrayBuffer()) }
  } catch (error) {
    return { status: response.status, error }
  }
}

t.test('upstream narinfos and NARs are checked before anything is served whole or stored', { skip: skipWithoutNginx }, async (t) => {
  const dir = await tempDir(t)
  const root = join(dir, 'upstream')
  /** A NAR of new contents (none of its chunks stored anywhere yet). */
  const freshNar = async (): Promise<Buffer> => {
    const tree = join(dir, `tree-${newPathHash()}`)
    await mkdir(tree)
    await writeFile(join(tree, 'data'), randomBytes(600_000))
    await writeFile(join(tree, 'small'), 'hello\n')
    return (await narOf(tree)).bytes
  }
  const nar = await freshNar()
  const key = generateSecretKey('upstream-verify-1')
  const otherKey = generateSecretKey('someone-else-1')
  await initCache(root)
  const nginx = await startNginx(t, dir, root)
  const upstream = { url: `${nginx.url}/`, publicKeys: [formatPublicKey(key.publicKey)], priority: 50, timeout: 20_000, allowUnsigned: false, attempts: 1, backoff: 0 }
  const { options, url } = await serve(t, { upstreams: [upstream] })
  const narUrlOf = async (hash: string): Promise<string> => {
    const response = await fetch(`${url}/${hash}.narinfo`)
    t.equal(response.status, 200, `${hash}.narinfo is served`)
    return /^URL: (.*)$/m.exec(await response.text())?.[1] ?? 'missing'
  }
  /** Whether a path is stored here, once the downloads in progress ended: only a stored path has a listing. */
  const isLocal = async (hash: string): Promise<boolean> => {
    await options.pullThrough.idle()
    return (await fetch(`${url}/${hash}.ls`)).status === 200
  }

  for (const method of ['none', 'bzip2', 'br', 'xz', 'zstd'] as const) {
    await t.test(`a good NAR compressed with ${method} is served and stored`, async (t) => {
      const path = await publish(root, nar, method, key)
      const got = await get(`${url}/${await narUrlOf(path.hash)}`)
      t.equal(got.status, 200)
      t.ok(got.body?.equals(nar), 'byte-identical')
      t.ok(await isLocal(path.hash), 'stored as a local path')
    })
  }

  await t.test('with no room in the spool, a download goes through a window at the pace of the ingest, and is served and stored the same', async (t) => {
    const windowed = await serve(t, { upstreams: [upstream], upstreamSpoolBytes: 0 })
    const fresh = await freshNar()
    const path = await publish(root, fresh, 'zstd', key)
    const narinfo = await (await fetch(`${windowed.url}/${path.hash}.narinfo`)).text()
    const got = await get(`${windowed.url}/${/^URL: (.*)$/m.exec(narinfo)?.[1] ?? 'missing'}`)
    t.ok(got.body?.equals(fresh), 'byte-identical')
    await windowed.options.pullThrough.idle()
    t.equal((await fetch(`${windowed.url}/${path.hash}.ls`)).status, 200, 'stored')
    t.notMatch(await (await fetch(`${windowed.url}/metrics`)).text(), /nixcas_upstream_spool_bytes/, 'no spool at all')
  })

  await t.test('through a window, a client that reads slowly gets every byte while another keeps up and the ingest takes its pieces', async (t) => {
    const windowed = await serve(t, { upstreams: [upstream], upstreamSpoolBytes: 0 })
    const tree = join(dir, `tree-${newPathHash()}`)
    await mkdir(tree)
    await writeFile(join(tree, 'data'), randomBytes(6 * 1024 * 1024))
    const big = (await narOf(tree)).bytes
    const path = await publish(root, big, 'none', key)
    const narUrl = `${windowed.url}/${/^URL: (.*)$/m.exec(await (await fetch(`${windowed.url}/${path.hash}.narinfo`)).text())?.[1] ?? 'missing'}`
    const slowly = async (): Promise<Buffer> => {
      const response = await fetch(narUrl, { headers: { 'accept-encoding': 'identity' } })
      const reader = (response.body as ReadableStream<Uint8Array>).getReader()
      const parts: Uint8Array[] = []
      for (let next = await reader.read(); !next.done; next = await reader.read()) {
        parts.push(next.value)
        await new Promise((resolve) => setTimeout(resolve, 2))
      }
      return Buffer.concat(parts)
    }
    const [fast, slow] = await Promise.all([get(narUrl), slowly()])
    t.ok(fast.body?.equals(big), 'the client that keeps up: byte-identical')
    t.ok(slow.equals(big), 'the slow client: byte-identical')
    await windowed.options.pullThrough.idle()
    t.equal((await fetch(`${windowed.url}/${path.hash}.ls`)).status, 200, 'stored')
  })

  await t.test('an upstream that trickles its bytes (a few per write): served byte-identical and stored, spooled or through a window', async (t) => {
    const proxy = await startFaultyProxy(t, nginx.url, { trickle: 7 })
    const slow = { ...upstream, url: `${proxy.endpoint}/` }
    for (const upstreamSpoolBytes of [undefined, 0]) {
      const server = await serve(t, upstreamSpoolBytes === undefined ? { upstreams: [slow] } : { upstreams: [slow], upstreamSpoolBytes })
      const tree = join(dir, `tree-${newPathHash()}`)
      await mkdir(tree)
      await writeFile(join(tree, 'data'), randomBytes(40_000))
      await writeFile(join(tree, 'small'), 'hello\n')
      const small = (await narOf(tree)).bytes
      const path = await publish(root, small, 'none', key)
      const narinfo = await (await fetch(`${server.url}/${path.hash}.narinfo`)).text()
      const got = await get(`${server.url}/${/^URL: (.*)$/m.exec(narinfo)?.[1] ?? 'missing'}`)
      const how = upstreamSpoolBytes === undefined ? 'spooled' : 'through a window'
      t.ok(got.body?.equals(small), `${how}: byte-identical`)
      await server.options.pullThrough.idle()
      t.equal((await fetch(`${server.url}/${path.hash}.ls`)).status, 200, `${how}: stored`)
    }
  })

  await t.test('another path with a NAR stored here already becomes local with no download', async (t) => {
    const before = (await nginx.requests()).filter((line) => line.startsWith('GET /nar/')).length
    const path = await publish(root, nar, 'xz', key)
    await narUrlOf(path.hash)
    t.ok(await isLocal(path.hash))
    t.equal((await nginx.requests()).filter((line) => line.startsWith('GET /nar/')).length, before)
  })

  await t.test('a Range request on an uncached NAR is answered 206 with the right bytes', async (t) => {
    const fresh = await freshNar()
    const path = await publish(root, fresh, 'xz', key)
    const got = await get(`${url}/${await narUrlOf(path.hash)}`, { range: 'bytes=1000-200999' })
    t.equal(got.status, 206)
    t.ok(got.body?.equals(fresh.subarray(1000, 201000)), 'the range, byte-identical')
    // The range was answered; the download still finishes and the path is stored.
    t.ok(await isLocal(path.hash), 'stored once the download finished')
  })

  const corruptions: [string, CodecMethod, (bytes: Buffer) => Buffer][] = [
    ['one byte of a file changed (wrong NarHash)', 'xz', (bytes) => {
      bytes.writeUInt8(bytes.readUInt8(bytes.length - 1000) ^ 0xff, bytes.length - 1000)
      return bytes
    }],
    ['a byte changed, uncompressed', 'none', (bytes) => {
      bytes.writeUInt8(bytes.readUInt8(bytes.length - 300_000) ^ 0x01, bytes.length - 300_000)
      return bytes
    }],
    ['truncated (wrong NarSize)', 'zstd', (bytes) => bytes.subarray(0, bytes.length - 4096)],
    ['longer than its NarSize', 'none', (bytes) => Buffer.concat([bytes, Buffer.alloc(64)])],
  ]
  for (const [what, method, tamper] of corruptions) {
    await t.test(`a corrupt upstream NAR (${what}) is never served whole nor stored`, async (t) => {
      const fresh = await freshNar()
      const path = await publish(root, fresh, method, key, tamper)
      const narUrl = await narUrlOf(path.hash)
      const got = await get(`${url}/${narUrl}`)
      t.notOk(got.body?.equals(fresh), 'the client did not get a whole NAR')
      t.ok(got.error !== undefined || got.status >= 500 || (got.body?.length ?? 0) < fresh.length, 'the response failed or was cut short')
      t.notOk(await isLocal(path.hash), 'not stored')
      const again = await get(`${url}/${narUrl}`)
      t.notOk(again.body?.equals(fresh) || again.body?.equals(tamper(Buffer.from(fresh))), 'nor served whole later')
      t.notOk(await isLocal(path.hash), 'still not stored')
    })
  }

  await t.test('an upstream NAR that cannot be fetched is a 502 before any byte, never a response cut short', async (t) => {
    const path = await publish(root, await freshNar(), 'xz', key)
    const narinfo = await (await fetch(`${nginx.url}/${path.hash}.narinfo`)).text()
    await rm(join(root, /^URL: (.*)$/m.exec(narinfo)?.[1] ?? 'missing'))
    const got = await get(`${url}/${await narUrlOf(path.hash)}`)
    t.equal(got.status, 502)
    t.notOk(await isLocal(path.hash))
  })

  await t.test('narinfos without a valid signature by a trusted key are refused', async (t) => {
    const unsigned = await publish(root, nar, 'xz', undefined)
    const foreign = await publish(root, nar, 'xz', otherKey)
    t.equal((await fetch(`${url}/${unsigned.hash}.narinfo`)).status, 404, 'unsigned')
    t.equal((await fetch(`${url}/${foreign.hash}.narinfo`)).status, 404, 'signed by another key')
    const lenient = await serve(t, { upstreams: [{ ...upstream, allowUnsigned: true }] })
    t.equal((await fetch(`${lenient.url}/${unsigned.hash}.narinfo`)).status, 200, 'unsigned, with allowUnsigned')
    const trusting = await serve(t, { upstreams: [upstream], upstreamKeys: [formatPublicKey(otherKey.publicKey)] })
    t.equal((await fetch(`${trusting.url}/${foreign.hash}.narinfo`)).status, 200, 'signed by a key of upstreamKeys')
  })

  await t.test('metrics count corrupt downloads and refusals', async (t) => {
    const metrics = await (await fetch(`${url}/metrics`)).text()
    t.match(metrics, /nixcas_upstream_nar_fetches_total\{upstream="[^"]+",outcome="corrupt"\} [1-9]/)
    t.match(metrics, /nixcas_upstream_narinfo_lookups_total\{upstream="[^"]+",outcome="refused"\} 2/)
  })
})

t.test('an upstream whose StoreDir is not ours is never used; one without nix-cache-info has the default', async (t) => {
  const key = generateSecretKey('upstream-storedir-1')
  const hash = newPathHash()
  const narinfo = `StorePath: /nix/store/${hash}-x\nURL: nar/x.nar\nCompression: none\nNarHash: sha256:${'0'.repeat(52)}\nNarSize: 8\nReferences: \n`
  const signed = renderNarInfo(signNarInfo(parseNarInfo(narinfo), [key]))
  const upstreams: string[] = []
  for (const cacheInfo of ['StoreDir: /gnu/store\n', undefined]) {
    const server = createServer((request, response) => {
      if (request.url === '/nix-cache-info' && cacheInfo !== undefined) response.end(cacheInfo)
      else if (request.url === `/${hash}.narinfo`) response.end(signed)
      else response.writeHead(404).end()
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    t.teardown(() => new Promise((resolve) => server.close(resolve)))
    upstreams.push(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`)
  }
  const upstream = (url: string) => ({ url, publicKeys: [formatPublicKey(key.publicKey)], priority: 50, timeout: 20_000, allowUnsigned: false, attempts: 1, backoff: 0 })
  const other = await serve(t, { upstreams: [upstream(upstreams[0] ?? '')] })
  t.equal((await fetch(`${other.url}/${hash}.narinfo`)).status, 404, 'another StoreDir: not used')
  t.match(await (await fetch(`${other.url}/metrics`)).text(), /outcome="refused"\} 1/)
  const plain = await serve(t, { upstreams: [upstream(upstreams[1] ?? '')] })
  t.equal((await fetch(`${plain.url}/${hash}.narinfo`)).status, 200, 'no nix-cache-info: /nix/store assumed')
})

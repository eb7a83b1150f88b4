import { randomBytes, randomUUID } from 'node:crypto'
import { createServer, type Socket } from 'node:net'
import { join } from 'node:path'
import type { AppOptions } from '../../src/app.ts'
import t, { type Test } from 'tap'
import { buildClosure, type Closure } from '../helpers/closure.ts'
import { nix, skipWithoutNix } from '../helpers/nix.ts'
import { makeKeys, nixClient, serve, type Keys } from '../helpers/nix-client.ts'
import { startNginx } from '../helpers/nginx.ts'
import { startRoundRobin } from '../helpers/round-robin.ts'
import { tempDir } from '../helpers/trees.ts'
import { encodeNixbase32 } from '../../src/nix/nixbase32.ts'

const hashOf = (path: string): string => path.slice('/nix/store/'.length, '/nix/store/'.length + 32)

/** Whether a path is stored here (not only known upstream), once the downloads in progress ended: only a stored path has a listing. */
async function isLocal(options: AppOptions, url: string, path: string): Promise<boolean> {
  await options.pullThrough.idle()
  return (await fetch(`${url}/${hashOf(path)}.ls`)).status === 200
}

/** A `nix copy --to file://` cache with `compression`, every path signed by the upstream's key. */
async function pushToFileCache(root: string, keys: Keys, closure: Closure, compression: string): Promise<void> {
  await nix('nix', ['copy', '--to', `file://${root}?compression=${compression}`, closure.top])
  await nix('nix', ['store', 'sign', '--store', `file://${root}`, '--key-file', keys.secretFile, '--recursive', closure.top])
}

/** Pulls a closure from `url` into a fresh store (signatures required), checks it, and compares every path's NAR with the original. */
async function pullInto(t: Test, dir: string, url: string, publicKey: string, closure: Closure): Promise<void> {
  const store = join(dir, `pulled-${randomUUID()}`)
  await nixClient(dir, ['copy', '--from', url, '--to', store, '--option', 'trusted-public-keys', publicKey, '--option', 'require-sigs', 'true', closure.top])
  const verified = await nixClient(dir, ['store', 'verify', '--store', store, '--option', 'trusted-public-keys', publicKey, '--recursive', '--sigs-needed', '1', closure.top])
  t.notMatch(verified, /untrusted|corrupt|error/i, 'nix store verify is satisfied')
  for (const path of closure.paths) {
    const pulled = await nix('nix', ['store', 'dump-path', '--store', store, path])
    t.ok(pulled.equals(await nix('nix-store', ['--dump', path])), `${path}: byte-identical in the fresh store`)
  }
}

t.test('pull-through from nginx serving a nix copy cache (xz and zstd), signed by its own key', { skip: skipWithoutNix }, async (t) => {
  const dir = await tempDir(t)
  const upstreamKeys = await makeKeys(dir, 'upstream-test-1')
  const ourKeys = await makeKeys(dir, 'nixcas-pull-1')
  const root = join(dir, 'upstream')
  const xz = await buildClosure(dir)
  const zstd = await buildClosure(dir)
  const spread = await buildClosure(dir)
  await pushToFileCache(root, upstreamKeys, xz, 'xz')
  await pushToFileCache(root, upstreamKeys, zstd, 'zstd')
  await pushToFileCache(root, upstreamKeys, spread, 'xz')
  const nginx = await startNginx(t, dir, root)
  const config = {
    stores: { stores: {}, root: `file://${join(dir, 'nixcas')}` },
    signingKeyFiles: [ourKeys.secretFile],
    upstreams: [{ url: `${nginx.url}/`, publicKeys: [upstreamKeys.publicKey], priority: 50, timeout: 20_000, allowUnsigned: false, attempts: 1, backoff: 0 }],
  }
  let { app, url, options } = await serve(t, config)
  const whole = t
  const narRequests = async (): Promise<string[]> => (await nginx.requests()).filter((line) => line.startsWith('GET /nar/'))

  await t.test('nix copy --to sees an upstream-only path as present and downloads no NAR', async (t) => {
    const output = await nixClient(dir, ['copy', '--to', url, xz.top])
    t.notMatch(output, /error/i)
    t.same(await narRequests(), [], 'no upstream NAR was fetched by the push')
    t.notOk(await isLocal(options, url, xz.top), 'the path is still upstream-only')
  })

  await t.test('twenty concurrent GETs of an uncached NAR cause one upstream NAR request', async (t) => {
    const narinfo = await (await fetch(`${url}/${hashOf(zstd.top)}.narinfo`)).text()
    t.match(narinfo, /^Compression: none$/m, 'served uncompressed from here')
    t.match(narinfo, /^Sig: upstream-test-1:/m, "the upstream's signature is kept")
    t.match(narinfo, /^Sig: nixcas-pull-1:/m, 'ours is added')
    const narUrl = /^URL: (.*)$/m.exec(narinfo)?.[1] ?? ''
    t.equal(narUrl, `nar/${/^NarHash: sha256:([0-9a-z]{52})$/m.exec(narinfo)?.[1] ?? 'missing'}.nar?hash=${hashOf(zstd.top)}`, 'our NAR URL, naming the store path')
    const expected = await nix('nix-store', ['--dump', zstd.top])
    const bodies = await Promise.all(
      Array.from({ length: 20 }, async () => Buffer.from(await (await fetch(`${url}/${narUrl}`, { headers: { 'accept-encoding': 'identity' } })).arrayBuffer())),
    )
    t.ok(bodies.every((body) => body.equals(expected)), 'every client got the NAR, byte-identical')
    const fetched = await narRequests()
    t.equal(fetched.length, 1, `one upstream NAR request: ${fetched.join('; ')}`)
    t.match(fetched[0], /\.nar\.zst 200$/)
    t.ok(await isLocal(options, url, zstd.top), 'the path is now stored here')
    const metrics = await (await fetch(`${url}/metrics`)).text()
    t.match(metrics, /nixcas_upstream_nar_fetches_total\{upstream="[^"]+",outcome="ok"\} 1/)
    t.match(metrics, /nixcas_upstream_narinfo_lookups_total\{upstream="[^"]+",outcome="hit"\} \d+/)
    t.match(metrics, /nixcas_upstream_bytes_total\{upstream="[^"]+"\} [1-9]/)
    t.match(metrics, /^nixcas_upstream_spool_bytes 0$/m, 'the spool is given back')
  })

  await t.test('replicas behind a load balancer: a NAR URL one replica gave is pulled by another', async (t) => {
    const replica = await serve(t, config)
    const narinfo = await (await fetch(`${url}/${hashOf(spread.dep)}.narinfo`)).text()
    const narUrl = /^URL: (.*)$/m.exec(narinfo)?.[1] ?? ''
    const wrong = narUrl.replace(/\?hash=.*/, `?hash=${hashOf(spread.top)}`)
    t.equal((await fetch(`${replica.url}/${wrong}`)).status, 404, 'a hash naming a path of another NAR is a miss')
    t.equal((await fetch(`${replica.url}/${narUrl.replace(/\?hash=.*/, '?hash=nope')}`)).status, 404, 'so is one that is not a store path hash')
    t.equal((await fetch(`${replica.url}/${narUrl.replace(/\?hash=.*/, '')}`)).status, 404, 'and a URL without it')
    const expected = await nix('nix-store', ['--dump', spread.dep])
    const other = await fetch(`${replica.url}/${narUrl}`, { headers: { 'accept-encoding': 'identity' } })
    t.equal(other.status, 200, 'the replica that never saw the narinfo serves the NAR')
    t.ok(Buffer.from(await other.arrayBuffer()).equals(expected), 'byte-identical')
    // The real Nix client, every request to the next replica in turn.
    const balancer = await startRoundRobin(t, [url, replica.url])
    await pullInto(t, dir, balancer.url, upstreamKeys.publicKey, spread)
    t.ok(balancer.served.every((count) => count > 0), `both replicas answered (${balancer.served.join(', ')} requests)`)
  })

  await t.test('the real Nix client pulls closures through nixcas as its only substituter', async (t) => {
    await pullInto(t, dir, url, upstreamKeys.publicKey, xz)
    // Trusting only nixcas's key: the signature we added verifies too.
    await pullInto(t, dir, url, ourKeys.publicKey, zstd)
    for (const path of [...xz.paths, ...zstd.paths]) t.ok(await isLocal(options, url, path), `${path} is a local path now`)
  })

  await t.test('restarted with the upstream stopped, nixcas serves the pulled closures to fresh stores alone', async (t) => {
    const before = (await nginx.requests()).length
    await nginx.stop()
    // A new process in effect: nothing of the first server's memory (narinfo caches, upstream narinfos) is left.
    await app.close()
    ;({ app, url, options } = await serve(whole, config))
    const narinfo = await (await fetch(`${url}/${hashOf(xz.top)}.narinfo`)).text()
    t.match(narinfo, /^Sig: upstream-test-1:/m, "the upstream's signature was stored with the path")
    t.match(narinfo, /^Sig: nixcas-pull-1:/m, 'and ours')
    t.match(narinfo, new RegExp(`^References: .*${xz.dep.slice("/nix/store/".length)}`, "m"), 'and its references')
    await pullInto(t, dir, url, upstreamKeys.publicKey, xz)
    await pullInto(t, dir, url, ourKeys.publicKey, zstd)
    t.equal((await nginx.requests()).length, before)
  })

  await t.test('upstream down: a miss is a 404, never a 5xx', async (t) => {
    const missing = encodeNixbase32(randomBytes(20)).slice(0, 32)
    const response = await fetch(`${url}/${missing}.narinfo`)
    t.equal(response.status, 404)
    t.equal((await fetch(`${url}/${hashOf(xz.top)}.narinfo`)).status, 200, 'a local path is still served')
    const metrics = await (await fetch(`${url}/metrics`)).text()
    t.match(metrics, /nixcas_upstream_errors_total\{upstream="[^"]+",request="narinfo"\} [1-9]/)
  })
})

t.test('an upstream that never answers: misses are 404 within its timeout, local paths still served', async (t) => {
  const sockets = new Set<Socket>()
  const silent = createServer((socket) => sockets.add(socket))
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    for (const socket of sockets) socket.destroy()
    await new Promise((resolve) => silent.close(resolve))
  })
  const port = (silent.address() as { port: number }).port
  const timeout = 1_000
  const { url } = await serve(t, { upstreams: [{ url: `http://127.0.0.1:${port}/`, publicKeys: [], priority: 50, timeout, allowUnsigned: false, attempts: 1, backoff: 0 }] })
  const missing = encodeNixbase32(randomBytes(20)).slice(0, 32)
  const started = Date.now()
  const response = await fetch(`${url}/${missing}.narinfo`)
  const elapsed = Date.now() - started
  t.equal(response.status, 404)
  // Generous: the timeout is 1 s, a busy machine may add a lot.
  t.ok(elapsed < timeout + 20_000, `answered in ${elapsed} ms`)
  // Errors are not remembered: the next miss asks again (and answers 404 again).
  t.equal((await fetch(`${url}/${missing}.narinfo`)).status, 404)
  const metrics = await (await fetch(`${url}/metrics`)).text()
  t.match(metrics, /nixcas_upstream_narinfo_lookups_total\{upstream="[^"]+",outcome="error"\} 2/)
})

import { mkdir, writeFile } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import t from 'tap'
import { formatPublicKey, generateSecretKey } from '../../src/nix/signing.ts'
import { startFaultyProxy } from '../helpers/faulty-proxy.ts'
import { narOf } from '../helpers/nar-samples.ts'
import { startNginx, skipWithoutNginx } from '../helpers/nginx.ts'
import { serve } from '../helpers/nix-client.ts'
import { tempDir } from '../helpers/trees.ts'
import { initCache, newPathHash, publish } from '../helpers/upstream-cache.ts'

/** The value of one metric line, 0 when absent. */
const metric = (text: string, name: string, labels: string): number => Number(new RegExp(`^${name}\\{${labels}\\} (\\S+)$`, 'm').exec(text)?.[1] ?? 0)

t.test('upstream requests are tried again on transient errors only, within the timeout', { skip: skipWithoutNginx }, async (t) => {
  const dir = await tempDir(t)
  const root = join(dir, 'upstream')
  await initCache(root)
  const tree = join(dir, 'tree')
  await mkdir(tree)
  await writeFile(join(tree, 'data'), randomBytes(300_000))
  const { bytes: nar } = await narOf(tree)
  const key = generateSecretKey('upstream-retry-1')
  const nginx = await startNginx(t, dir, root)
  const upstream = (url: string, attempts: number, timeout = 20_000) => ({ url: `${url}/`, publicKeys: [formatPublicKey(key.publicKey)], priority: 50, timeout, allowUnsigned: false, attempts, backoff: 10 })
  const labels = (request: string) => `upstream="[^"]+",request="${request}"`

  await t.test('two 503s in a row before every answer: three attempts get narinfo and NAR', async (t) => {
    const proxy = await startFaultyProxy(t, nginx.url, { fail: 1, maxFaultsInARow: 2 })
    const { url, options } = await serve(t, { upstreams: [upstream(proxy.endpoint, 3)] })
    const path = await publish(root, nar, 'xz', key)
    const narinfo = await fetch(`${url}/${path.hash}.narinfo`)
    t.equal(narinfo.status, 200)
    const narUrl = /^URL: (.*)$/m.exec(await narinfo.text())?.[1] ?? 'missing'
    const body = Buffer.from(await (await fetch(`${url}/${narUrl}`, { headers: { 'accept-encoding': 'identity' } })).arrayBuffer())
    t.ok(body.equals(nar), 'the NAR, byte-identical')
    await options.pullThrough.idle()
    t.equal((await fetch(`${url}/${path.hash}.ls`)).status, 200, 'and stored')
    const metrics = await (await fetch(`${url}/metrics`)).text()
    t.equal(metric(metrics, 'nixcas_upstream_retries_total', labels('narinfo')), 2)
    t.equal(metric(metrics, 'nixcas_upstream_retries_total', labels('nar')), 2)
    t.equal(proxy.counts.fail, 6, 'two failures each for nix-cache-info, the narinfo and the NAR')
  })

  await t.test('the same with one attempt: a miss, answered 404', async (t) => {
    const proxy = await startFaultyProxy(t, nginx.url, { fail: 1, maxFaultsInARow: 2 })
    const { url } = await serve(t, { upstreams: [upstream(proxy.endpoint, 1)] })
    const path = await publish(root, nar, 'xz', key)
    t.equal((await fetch(`${url}/${path.hash}.narinfo`)).status, 404)
  })

  await t.test('an upstream that is down costs its attempts and answers 404; a 404 is never tried again', async (t) => {
    const proxy = await startFaultyProxy(t, nginx.url, { down: true })
    const { url } = await serve(t, { upstreams: [upstream(proxy.endpoint, 4, 10_000)] })
    t.equal((await fetch(`${url}/${newPathHash()}.narinfo`)).status, 404)
    let metrics = await (await fetch(`${url}/metrics`)).text()
    t.equal(metric(metrics, 'nixcas_upstream_requests_total', labels('narinfo')), 4, 'four attempts')
    t.equal(metric(metrics, 'nixcas_upstream_retries_total', labels('narinfo')), 3)
    proxy.faults.down = false
    t.equal((await fetch(`${url}/${newPathHash()}.narinfo`)).status, 404, 'a path the upstream does not have')
    metrics = await (await fetch(`${url}/metrics`)).text()
    t.equal(metric(metrics, 'nixcas_upstream_requests_total', labels('narinfo')), 5, 'asked once')
  })

  await t.test('a stopped upstream (connection refused) is a 404 within the timeout, whatever the attempts', async (t) => {
    const stopped = await startNginx(t, dir, root)
    await stopped.stop()
    const { url } = await serve(t, { upstreams: [{ ...upstream(stopped.url, 1_000, 1_000), backoff: 50 }] })
    t.equal((await fetch(`${url}/${newPathHash()}.narinfo`)).status, 404)
    const metrics = await (await fetch(`${url}/metrics`)).text()
    const tries = metric(metrics, 'nixcas_upstream_requests_total', labels('narinfo'))
    // With a backoff of 50 ms doubling, a 1 s timeout leaves room for a handful of tries, never a thousand.
    t.ok(tries >= 1 && tries < 20, `stopped by the timeout after ${tries} tries`)
  })

  await t.test('redirects are followed, to another server too; a redirect loop is a failure, not a hang', async (t) => {
    // A front that sends every request elsewhere: NAR files to nginx, the rest back to itself under /again/ once.
    let loop = false
    const front = createServer((request, response) => {
      const path = request.url ?? '/'
      const location = loop ? path : path.startsWith('/again/') || path.startsWith('/nar/') ? `${nginx.url}${path.replace(/^\/again/, '')}` : `/again${path}`
      response.writeHead(path.startsWith('/nar/') ? 307 : 302, { location, 'content-length': '0' }).end()
    })
    await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve))
    t.teardown(() => new Promise<void>((resolve) => front.close(() => resolve())))
    const frontUrl = `http://127.0.0.1:${(front.address() as AddressInfo).port}`
    const { url, options } = await serve(t, { upstreams: [upstream(frontUrl, 1)] })
    const path = await publish(root, nar, 'zstd', key)
    const narinfo = await fetch(`${url}/${path.hash}.narinfo`)
    t.equal(narinfo.status, 200, 'the narinfo, through two redirects')
    const narUrl = /^URL: (.*)$/m.exec(await narinfo.text())?.[1] ?? 'missing'
    const body = Buffer.from(await (await fetch(`${url}/${narUrl}`, { headers: { 'accept-encoding': 'identity' } })).arrayBuffer())
    t.ok(body.equals(nar), 'the NAR, from the server it was sent to')
    await options.pullThrough.idle()
    t.equal((await fetch(`${url}/${path.hash}.ls`)).status, 200, 'and stored')
    loop = true
    t.equal((await fetch(`${url}/${newPathHash()}.narinfo`)).status, 404, 'a redirect loop: a miss')
    const metrics = await (await fetch(`${url}/metrics`)).text()
    t.equal(metric(metrics, 'nixcas_upstream_errors_total', labels('narinfo')), 1, 'counted as an upstream error')
  })
})

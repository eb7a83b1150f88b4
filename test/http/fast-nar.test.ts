import { randomBytes } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { gunzipSync } from 'node:zlib'
import t from 'tap'
import { ByteBudget } from '../../src/budget.ts'
import { NarService } from '../../src/cache/nar-service.ts'
import { fastNar } from '../../src/http/fast-nar.ts'
import { makePath, push } from '../helpers/push.ts'
import { serve } from '../helpers/nix-client.ts'
import { tempDir } from '../helpers/trees.ts'
import { ownHeaders, rawGet } from '../helpers/raw-http.ts'


/** A counter of /metrics summed over its series whose labels include `labels`. */
async function metric(url: string, name: string, labels = ''): Promise<number> {
  const text = (await rawGet(`${url}/metrics`)).body.toString()
  let total = 0
  for (const match of text.matchAll(new RegExp(`^${name}\\{([^}]*)\\} (\\d+)`, 'gm'))) if ((match[1] ?? '').includes(labels)) total += Number(match[2])
  return total
}

t.test('a small NAR, once served whole, is answered from memory as the route answers it', async (t) => {
  const { app, url, options } = await serve(t, {})
  // Several files: the NAR arrives in several pieces, all of which the copy must hold.
  const path = await makePath(await tempDir(t), 'small', { a: randomBytes(150_000), b: randomBytes(150_000), c: Buffer.from('c\n') })
  t.equal(await push(app, path), 204)
  const narUrl = `${url}/nar/${path.nar.hash}.nar`

  const first = await rawGet(narUrl)
  t.equal(first.status, 200)
  t.ok(first.body.equals(path.nar.bytes), 'the route renders it')
  t.ok(options.nars.cachedNar(path.nar.hash)?.equals(path.nar.bytes), 'and keeps it whole')

  const reads = await metric(url, 'nixcas_store_requests_total')
  const served = await metric(url, 'nixcas_http_requests_total', 'route="/nar/:file",method="GET",status="200"')
  const bytes = await metric(url, 'nixcas_http_response_bytes_total', 'route="nar"')
  const fast = await rawGet(narUrl)
  t.equal(fast.status, 200)
  t.ok(fast.body.equals(path.nar.bytes), 'the same bytes')
  t.same(ownHeaders(fast), ownHeaders(first), 'the same headers')
  t.equal(await metric(url, 'nixcas_store_requests_total'), reads, 'with no store read')
  t.equal(await metric(url, 'nixcas_http_requests_total', 'route="/nar/:file",method="GET",status="200"'), served + 1, 'counted under the route')
  t.equal(await metric(url, 'nixcas_http_response_bytes_total', 'route="nar"'), bytes + path.nar.bytes.length, 'with its bytes')

  const routedHead = await app.inject({ method: 'HEAD', url: `/nar/${path.nar.hash}.nar` })
  const head = await rawGet(narUrl, { method: 'HEAD' })
  t.equal(head.status, 200)
  t.equal(head.body.length, 0, 'HEAD: no body')
  t.same(ownHeaders(head), ownHeaders({ headers: routedHead.headers }), 'HEAD: the headers the route gives')

  // What the memory copy does not answer goes to the route, which reads the store.
  const range = await rawGet(narUrl, { headers: { range: 'bytes=10-19' } })
  t.equal(range.status, 206, 'a range: the route')
  t.ok(range.body.equals(path.nar.bytes.subarray(10, 20)))
  t.equal((await rawGet(narUrl, { headers: { 'if-none-match': `"${path.nar.hash}"` } })).status, 304, 'a revalidation: the route')
  const gzipped = await rawGet(narUrl, { headers: { 'accept-encoding': 'gzip' } })
  t.equal(gzipped.headers['content-encoding'], 'gzip', 'an accepted encoding: the route compresses it')
  t.ok(gunzipSync(gzipped.body).equals(path.nar.bytes))
  t.ok((await metric(url, 'nixcas_store_requests_total')) > reads, 'and those read the store')
})

t.test('only whole NARs that fit are kept: not a range, not a client that left, not a large NAR', async (t) => {
  const { app, options } = await serve(t, { wholeNarCacheBytes: 32 * 1024 * 1024 })
  const dir = await tempDir(t)
  const small = await makePath(dir, 'small', { a: randomBytes(300_000), b: randomBytes(300_000) })
  const large = await makePath(dir, 'large', { a: randomBytes(1_200_000) })
  t.equal(await push(app, small), 204)
  t.equal(await push(app, large), 204)
  const { nars } = options

  const nar = await nars.find(small.nar.hash)
  if (nar === undefined) throw new Error('the small NAR is not servable')
  const controller = new AbortController()
  const partial = nars.renderPooled(nar, { start: 0, end: 100 }, controller.signal)
  for await (const piece of partial) nars.written(piece)
  t.equal(nars.cachedNar(small.nar.hash), undefined, 'a range of it: nothing kept')

  const left = nars.renderPooled(nar, undefined, controller.signal)
  const firstPiece = await left.next()
  t.notOk(firstPiece.done, 'a first piece')
  if (!firstPiece.done) nars.written(firstPiece.value)
  await left.return(undefined)
  t.equal(nars.cachedNar(small.nar.hash), undefined, 'a client that left after the first piece: nothing kept')

  // Two clients at once: each gets the whole NAR, one copy is made and kept.
  const both = await Promise.all(
    [0, 1].map(async () => {
      const parts: Buffer[] = []
      for await (const piece of nars.renderPooled(nar, undefined, controller.signal)) {
        parts.push(Buffer.from(piece))
        nars.written(piece)
      }
      return Buffer.concat(parts)
    }),
  )
  t.ok(both.every((bytes) => bytes.equals(small.nar.bytes)), 'two clients at once: both get the NAR')
  t.ok(nars.cachedNar(small.nar.hash)?.equals(small.nar.bytes), 'and it is kept')

  t.equal((await app.inject({ url: `/nar/${large.nar.hash}.nar` })).statusCode, 200)
  t.equal(nars.cachedNar(large.nar.hash), undefined, 'larger than 1/32 of the memory: not kept')
  t.equal((await app.inject({ url: `/nar/${small.nar.hash}.nar` })).statusCode, 200)
  t.ok(nars.cachedNar(small.nar.hash)?.equals(small.nar.bytes), 'the whole small NAR: kept')

  const off = new NarService(nars.cas, { budget: new ByteBudget(16 * 1024 * 1024), stats: options.prefetchStats, wholeNarCacheBytes: 0 })
  const again = await off.find(small.nar.hash)
  if (again === undefined) throw new Error('the small NAR is not servable')
  for await (const piece of off.renderPooled(again, undefined, controller.signal)) off.written(piece)
  t.equal(off.cachedNar(small.nar.hash), undefined, 'wholeNarCacheBytes 0: nothing kept')
})

t.test('fastNar answers only kept NARs of a plain GET or HEAD, while open', async (t) => {
  const body = Buffer.from('nix-archive-1 ...')
  const name = '0'.repeat(52)
  let open = true
  const served: string[] = []
  const counted: string[] = []
  let sent = 0
  const answer = fastNar({
    cached: (key) => (key === name ? body : undefined),
    served: (key) => served.push(key),
    count: (route, method, status) => counted.push(`${route} ${method} ${status}`),
    sent: (bytes) => (sent += bytes),
    compressNars: true,
    open: () => open,
  })
  const written: { status?: number; headers?: Record<string, unknown>; body?: Buffer }[] = []
  const ask = (method: string, url: string, headers: Record<string, string> = {}): boolean => {
    const response = { writeHead: (status: number, head: Record<string, unknown>) => written.push({ status, headers: head }), end: (bytes?: Buffer) => Object.assign(written.at(-1) ?? {}, { body: bytes }) }
    return answer({ method, url, headers } as unknown as IncomingMessage, response as unknown as ServerResponse)
  }
  const headers = { 'content-type': 'application/x-nix-nar', 'cache-control': 'public, max-age=31536000, immutable', 'accept-ranges': 'bytes', etag: `"${name}"`, 'content-length': body.length }
  t.ok(ask('GET', `/nar/${name}.nar`), 'a kept NAR is answered')
  t.same(written[0], { status: 200, headers: { ...headers, vary: 'Accept-Encoding' }, body })
  t.ok(ask('GET', `/nar/${name}.nar`, { 'accept-encoding': 'identity' }), 'a client that accepts no encoding we make: answered')
  t.ok(ask('HEAD', `/nar/${name}.nar`))
  t.same(written[2], { status: 200, headers, body: undefined }, 'HEAD: no body, no Vary')
  t.same(served, [name, name, name], 'recorded as served')
  t.same(counted, ['/nar/:file GET 200', '/nar/:file GET 200', '/nar/:file HEAD 200'], 'counted')
  t.equal(sent, 2 * body.length, 'bytes counted for GETs')
  const left: [string, string, Record<string, string>?][] = [
    ['GET', `/nar/${'1'.repeat(52)}.nar`],
    ['PUT', `/nar/${name}.nar`],
    ['GET', `/nar/${name}.nar?hash=x`],
    ['GET', `/nar/${name}.nar.xz`],
    ['GET', `/nar/${name}.nar`, { range: 'bytes=0-1' }],
    ['GET', `/nar/${name}.nar`, { 'if-range': `"${name}"` }],
    ['GET', `/nar/${name}.nar`, { 'if-none-match': `"${name}"` }],
    ['GET', `/nar/${name}.nar`, { 'accept-encoding': 'gzip, br' }],
    ['GET', `/xar/${name}.nar`],
  ]
  for (const [method, url, extra] of left) t.notOk(ask(method, url, extra), `${method} ${url} ${JSON.stringify(extra ?? {})}: left to Fastify`)
  open = false
  t.notOk(ask('GET', `/nar/${name}.nar`), 'not while closed')
  t.equal(written.length, 3, 'nothing written for what it left')
})

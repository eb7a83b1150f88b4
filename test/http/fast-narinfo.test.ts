import { gunzipSync } from 'node:zlib'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { fastNarInfo, narinfoCacheControl } from '../../src/http/fast-narinfo.ts'
import { pino } from 'pino'
import t from 'tap'
import { makePath, narinfoOf, push } from '../helpers/push.ts'
import { serve } from '../helpers/nix-client.ts'
import { tempDir } from '../helpers/trees.ts'
import { ownHeaders, rawGet } from '../helpers/raw-http.ts'


async function requestsCounted(url: string, method: string): Promise<number> {
  const text = (await rawGet(`${url}/metrics`)).body.toString()
  return Number(new RegExp(`^nixcas_http_requests_total\\{route="/:hash\\.narinfo",method="${method}",status="200"\\} (\\d+)`, 'm').exec(text)?.[1] ?? 0)
}

t.test('a cached narinfo answered before Fastify is the answer the route gives', async (t) => {
  const { app, url, options } = await serve(t, {})
  const path = await makePath(await tempDir(t), 'fast', { file: Buffer.from('contents\n') })
  t.equal(await push(app, path), 204)
  const routed = await app.inject({ url: `/${path.hash}.narinfo` })
  t.equal(routed.statusCode, 200, 'the route (injected requests never take the fast path) answers, and caches the narinfo')
  const before = await requestsCounted(url, 'GET')
  const fast = await rawGet(`${url}/${path.hash}.narinfo`)
  t.equal(fast.status, 200)
  t.same(ownHeaders(fast), ownHeaders(routed), 'the same headers')
  t.ok(fast.body.equals(routed.rawPayload), 'the same body')
  t.equal(await requestsCounted(url, 'GET'), before + 1, 'counted under the route')
  t.ok(options.accessRecorder.size > 0, 'and recorded as served')

  const gzipped = await rawGet(`${url}/${path.hash}.narinfo`, { headers: { 'accept-encoding': 'gzip' } })
  const routedGzip = await app.inject({ url: `/${path.hash}.narinfo`, headers: { 'accept-encoding': 'gzip' } })
  t.same(ownHeaders(gzipped), ownHeaders(routedGzip), 'compressed: the same headers')
  t.ok(gunzipSync(gzipped.body).equals(routed.rawPayload), 'and the same narinfo inside')

  const head = await rawGet(`${url}/${path.hash}.narinfo`, { method: 'HEAD' })
  t.equal(head.status, 200)
  t.equal(head.body.length, 0, 'HEAD: no body')
  t.equal(head.headers['content-length'], String(routed.rawPayload.length))

  t.equal((await rawGet(`${url}/${path.hash}.narinfo?x=1`)).status, 200, 'a query string goes to the route')
  t.equal((await rawGet(`${url}/${'0'.repeat(32)}.narinfo`)).status, 404, 'a miss goes to the route')
  t.not((await rawGet(`${url}/../${path.hash.slice(3)}.narinfo`)).status, 200, 'so does anything that only looks like a narinfo')
})

t.test('with read credentials, or request lines logged, every narinfo goes through Fastify', async (t) => {
  const guarded = await serve(t, { auth: { writeTokens: ['secret'], writeUsers: {}, readTokens: ['secret'], readUsers: {} } })
  const path = await makePath(await tempDir(t), 'guarded', { file: Buffer.from('contents\n') })
  const authorization = 'Bearer secret'
  t.equal((await guarded.app.inject({ method: 'PUT', url: `/nar/${path.nar.hash}.nar`, payload: path.nar.bytes, headers: { authorization } })).statusCode, 201)
  t.equal((await guarded.app.inject({ method: 'PUT', url: `/${path.hash}.narinfo`, payload: narinfoOf(path), headers: { authorization } })).statusCode, 204)
  t.equal((await guarded.app.inject({ url: `/${path.hash}.narinfo`, headers: { authorization: 'Bearer secret' } })).statusCode, 200, 'cached')
  t.equal((await rawGet(`${guarded.url}/${path.hash}.narinfo`)).status, 401, 'no credential: refused')
  t.equal((await rawGet(`${guarded.url}/${path.hash}.narinfo`, { headers: { authorization: 'Bearer secret' } })).status, 200, 'with one: served')

  const lines: string[] = []
  const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(line) })
  const logged = await serve(t, {}, logger)
  t.equal(await push(logged.app, path), 204)
  t.equal((await logged.app.inject({ url: `/${path.hash}.narinfo` })).statusCode, 200)
  lines.length = 0
  t.equal((await rawGet(`${logged.url}/${path.hash}.narinfo`)).status, 200)
  t.ok(lines.some((line) => line.includes(`/${path.hash}.narinfo`)), 'the request has its log line')
})

t.test('fastNarInfo answers only cached narinfos of a GET or HEAD, while open', async (t) => {
  const body = Buffer.from('StorePath: /nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x\n')
  const hash = 'a'.repeat(32)
  let open = true
  const served: string[] = []
  const counted: string[] = []
  const answer = fastNarInfo({
    cached: (key) => (key === hash ? body : undefined),
    served: (key) => served.push(key),
    count: (route, method, status) => counted.push(`${route} ${method} ${status}`),
    cacheControl: narinfoCacheControl(60),
    open: () => open,
  })
  const written: { status?: number; headers?: Record<string, unknown>; body?: Buffer }[] = []
  const ask = (method: string, url: string, headers: Record<string, string> = {}): boolean => {
    const response = { writeHead: (status: number, head: Record<string, unknown>) => written.push({ status, headers: head }), end: (bytes: Buffer) => Object.assign(written.at(-1) ?? {}, { body: bytes }) }
    return answer({ method, url, headers } as unknown as IncomingMessage, response as unknown as ServerResponse)
  }
  t.ok(ask('GET', `/${hash}.narinfo`), 'a cached narinfo is answered')
  t.same(written[0], { status: 200, headers: { 'content-type': 'text/x-nix-narinfo', 'cache-control': 'public, max-age=60', vary: 'Accept-Encoding', 'content-length': body.length }, body })
  t.ok(ask('HEAD', `/${hash}.narinfo`))
  t.same(served, [hash, hash], 'recorded as served')
  t.same(counted, ['/:hash.narinfo GET 200', '/:hash.narinfo HEAD 200'], 'counted')
  for (const [method, url] of [['GET', `/${'b'.repeat(32)}.narinfo`], ['PUT', `/${hash}.narinfo`], ['GET', `/${hash}.narinfo?x`], ['GET', `/${hash}.ls`], ['DELETE', `/${hash}.narinfo`]] as const) {
    t.notOk(ask(method, url), `${method} ${url}: left to Fastify`)
  }
  open = false
  t.notOk(ask('GET', `/${hash}.narinfo`), 'not while closed')
  t.equal(written.length, 2, 'nothing written for what it left')
})

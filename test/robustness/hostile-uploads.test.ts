import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import t, { type Test } from 'tap'
import type { NarEvent } from '../../src/nix/nar-format.ts'
import { PATH_HASH } from '../helpers/nar-samples.ts'
import { narBytes } from '../helpers/synthetic-nars.ts'
import { listen } from './server.ts'

/**
 * Every writing route of a real server on a real socket, sent what an attacker (or a
 * broken client) sends: empty bodies, compressed streams cut at every byte (made with the
 * real xz, zstd, bzip2 and gzip), garbage, encodings it does not know. Each must be a 4xx
 * that names the problem, and the server must stay up and keep working.
 */

/** A URL for each writing route whose parameters pass the route's own checks, so the body is what gets judged. */
const ROUTE_URLS: Record<string, string> = {
  '/nar/:file': '/nar/hostile.nar',
  '/:hash.narinfo': `/${PATH_HASH}.narinfo`,
  '/:hash.ls': `/${PATH_HASH}.ls`,
  '/realisations/:name': `/realisations/sha256:${'c'.repeat(64)}!out.doi`,
  '/build-trace-v2/:drv/:output': `/build-trace-v2/${PATH_HASH}-hostile.drv/out.doi`,
  '/debuginfo/:name': `/debuginfo/ab${'c'.repeat(38)}.debug`,
  '/log/:name': `/log/${PATH_HASH}-hostile.drv`,
  '/pins/:name': '/pins/hostile',
}
/** Routes whose bodies are any bytes at all (a build log): only undecodable bodies are refused there. */
const ANY_BYTES = new Set(['/log/:name'])

const ENCODINGS = [
  ['xz', ['xz', '-c']],
  ['zstd', ['zstd', '-c', '-q']],
  ['bzip2', ['bzip2', '-c']],
  ['gzip', ['gzip', '-c', '-n']],
] as const

const compress = (command: readonly string[], input: Uint8Array): Buffer => execFileSync(command[0] as string, command.slice(1), { input })

/** Every proper prefix of `bytes`, the empty one included: a stream cut at each byte. */
function* cuts(bytes: Buffer): Generator<Buffer> {
  for (let length = 0; length < bytes.length; length++) yield bytes.subarray(0, length)
}

function* tinyTree(): Generator<NarEvent> {
  yield { type: 'directory', name: null }
  yield { type: 'file', name: Buffer.from('hello'), executable: false, size: 6 }
  yield { type: 'data', bytes: Buffer.from('hello\n') }
  yield { type: 'symlink', name: Buffer.from('link'), target: Buffer.from('hello') }
  yield { type: 'end' }
}

async function put(url: string, body: Uint8Array, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  const response = await fetch(url, { method: 'PUT', body, headers: { 'content-type': 'application/octet-stream', ...headers } })
  return { status: response.status, text: await response.text() }
}

/** Sends every body; each answer must be a 4xx that says something. Returns how many were sent. */
async function refused(t: Test, base: string, path: string, bodies: Iterable<[string, Uint8Array, Record<string, string>?]>): Promise<void> {
  let count = 0
  const wrong: string[] = []
  for (const [label, body, headers] of bodies) {
    const { status, text } = await put(base + path, body, headers)
    count++
    if (status < 400 || status >= 500 || text.trim() === '') wrong.push(`${label}: ${status} ${text.trim().slice(0, 120)}`)
  }
  t.same(wrong, [], `PUT ${path}: ${count} hostile bodies, each a 4xx that names the problem`)
}

t.test('no upload to any writing route can end or break the server', async (t) => {
  const server = await listen(t, { maxNarSize: 1024 * 1024 })
  const nar = await narBytes(tinyTree())
  const text = Buffer.from('hello\n')

  const routes = [...new Set(server.writingRoutes.filter((route) => route.method === 'PUT').map((route) => route.url))]
  t.ok(routes.includes('/nar/:file') && routes.includes('/:hash.narinfo') && routes.includes('/:hash.ls'), `writing routes found: ${routes.join(' ')}`)
  const unknown = routes.filter((route) => ROUTE_URLS[route] === undefined)
  t.same(unknown, [], 'every writing route has a URL here (add new routes to ROUTE_URLS)')

  // Every route: Content-Encoding bodies cut at every byte, garbage in each encoding, encodings it does not know.
  for (const route of routes) {
    const path = ROUTE_URLS[route] ?? route.replace(/:\w+/g, PATH_HASH)
    const bodies: [string, Uint8Array, Record<string, string>?][] = []
    for (const [encoding, command] of ENCODINGS) {
      for (const cut of cuts(compress(command, text))) bodies.push([`${encoding} cut at ${cut.length}`, cut, { 'content-encoding': encoding }])
      bodies.push([`${encoding} garbage`, randomBytes(300), { 'content-encoding': encoding }])
    }
    bodies.push(['unknown encoding', text, { 'content-encoding': 'lz4' }], ['stacked encodings', text, { 'content-encoding': 'gzip, br' }])
    if (!ANY_BYTES.has(route)) {
      for (const size of [0, 1, 5, 10, 300, 5000]) bodies.push([`${size} random bytes`, randomBytes(size)])
      bodies.push(['a NAR where it does not belong', route === '/nar/:file' ? nar.bytes.subarray(0, -1) : nar.bytes])
    }
    await refused(t, server.url, path, bodies)
  }

  // NAR uploads named by their compression: every cut of a real stream, garbage, the wrong method, bytes after the end.
  const streams = { nar: nar.bytes, 'nar.xz': compress(['xz', '-c'], nar.bytes), 'nar.zst': compress(['zstd', '-c', '-q'], nar.bytes), 'nar.bz2': compress(['bzip2', '-c'], nar.bytes) }
  for (const [suffix, stream] of Object.entries(streams)) {
    const bodies: [string, Uint8Array][] = [...cuts(stream)].map((cut) => [`cut at ${cut.length}`, cut])
    for (const size of [1, 5, 10, 4096]) bodies.push([`${size} random bytes`, randomBytes(size)])
    for (const [other, bytes] of Object.entries(streams)) if (other !== suffix && other !== 'nar') bodies.push([`a ${other} stream`, bytes])
    bodies.push(['bytes after the end', Buffer.concat([stream, Buffer.from('trailing')])])
    await refused(t, server.url, `/nar/hostile.${suffix}`, bodies)
  }

  t.equal((await fetch(`${server.url}/nar/${nar.hash}.nar`)).status, 404, 'none of it became a servable NAR')
  t.equal((await fetch(`${server.url}/health`)).status, 200, 'the server is healthy')
  t.equal((await put(`${server.url}/nar/hostile.nar.xz`, streams['nar.xz'])).status, 201, 'and still takes a good upload')
  const served = await fetch(`${server.url}/nar/${nar.hash}.nar`)
  t.ok(Buffer.from(await served.arrayBuffer()).equals(nar.bytes), 'and serves it')
})

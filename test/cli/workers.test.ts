import { spawn } from 'node:child_process'
import { createServer, request } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { narOf, narinfoFor, PATH_HASH } from '../helpers/nar-samples.ts'
import { makeGoldenTrees, tempDir } from '../helpers/trees.ts'

const cli = new URL('../../src/cli.ts', import.meta.url).pathname

/** One request on a connection of its own: node:cluster hands each new connection to the next worker. */
function once(port: number, method: string, path: string, body?: Buffer | string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, agent: false }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}

type Line = Record<string, unknown>

/** `nixcas serve --workers 2` as a user starts it; its log lines as they come. */
function serve(args: string[]): { lines: () => Line[]; exited: Promise<number | null>; signal: (name: NodeJS.Signals) => void; pid: number } {
  const child = spawn(process.execPath, ['--import', 'tsx', cli, 'serve', ...args], { env: { ...process.env, NIXCAS_LOG_LEVEL: 'info' } })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  const lines = (): Line[] => output.split('\n').flatMap((line) => (line.startsWith('{') ? [JSON.parse(line) as Line] : []))
  return { lines, exited, signal: (name) => child.kill(name), pid: child.pid as number }
}

async function until<T>(what: string, check: () => T | undefined, ms = 60_000): Promise<T> {
  for (let waited = 0; waited < ms; waited += 50) {
    const found = check()
    if (found !== undefined && found !== false) return found
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`not seen within ${ms / 1000} s: ${what}`)
}

t.test('several workers serve one store: a push through one is read through the others; a dead worker is replaced; SIGTERM stops them all', async (t) => {
  const dir = await tempDir(t)
  const nar = await narOf((await makeGoldenTrees(dir)).mixed as string)
  const server = serve(['--workers', '2', '--store', `file://${dir}/store`, '--listen', '127.0.0.1:0'])
  t.teardown(() => server.signal('SIGKILL'))
  const ready = (count: number) => (): true | undefined => (server.lines().filter((line) => String(line.msg).startsWith('2 workers listening on 127.0.0.1:')).length >= count ? true : undefined)
  const listeningPids = (): Set<unknown> => new Set(server.lines().filter((line) => String(line.msg).startsWith('Server listening')).map((line) => line.pid))
  await until('2 workers listening', ready(1))
  // The primary's line may come before a worker's own: output of several processes interleaves.
  await until('both workers logged their start', () => (listeningPids().size === 2 ? true : undefined))

  // Port 0: the primary holds the one socket, so every worker listens on the same port.
  const ports = new Set(server.lines().flatMap((line) => /^Server listening at http:\/\/127\.0\.0\.1:(\d+)$/.exec(String(line.msg))?.[1] ?? []))
  t.equal(ports.size, 1, 'one port for all workers')
  const port = Number([...ports][0])
  const workers = listeningPids()
  t.equal(workers.size, 2, 'two worker processes')
  t.notOk(workers.has(server.pid), 'the primary serves nothing itself')

  t.equal(await once(port, 'PUT', `/nar/${nar.hash}.nar`, nar.bytes), 201)
  t.equal(await once(port, 'PUT', `/${PATH_HASH}.narinfo`, narinfoFor(nar, PATH_HASH)), 204)
  for (let index = 0; index < 8; index++) t.equal(await once(port, 'GET', `/${PATH_HASH}.narinfo`), 200, `narinfo GET ${index}`)
  const answeredBy = (): Set<unknown> => new Set(server.lines().filter((line) => line.url === `/${PATH_HASH}.narinfo` && line.method === 'GET' && line.status === 200).map((line) => line.pid))
  await until('the GETs logged', () => (server.lines().filter((line) => line.url === `/${PATH_HASH}.narinfo` && line.method === 'GET').length === 8 ? true : undefined))
  t.same([...answeredBy()].sort(), [...workers].sort(), 'both workers served the narinfo pushed through the pool')

  const victim = [...workers][0] as number
  process.kill(victim, 'SIGKILL')
  await until('a replacement listening', ready(2))
  await until('the replacement logged its start', () => (listeningPids().size === 3 ? true : undefined))
  t.ok(server.lines().some((line) => line.msg === 'a worker exited; starting another' && line.pid === server.pid && line.worker === victim), 'the primary says it replaced the worker')
  for (let index = 0; index < 4; index++) t.equal(await once(port, 'GET', `/nar/${nar.hash}.nar`), 200, `NAR GET ${index} after the replacement`)

  server.signal('SIGTERM')
  t.equal(await server.exited, 0, 'the primary exits cleanly')
  const stopped = server.lines().filter((line) => line.msg === 'stopped').map((line) => line.pid)
  t.equal(stopped.length, 2, 'each live worker finished its requests and stopped')
  t.notOk(stopped.includes(victim))
  t.ok(server.lines().some((line) => line.msg === 'all workers stopped'))
})

t.test('a worker that cannot start stops the server with exit 1 instead of being restarted forever', async (t) => {
  const taken = createServer()
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
  t.teardown(() => taken.close())
  const { port } = taken.address() as AddressInfo
  const server = serve(['--workers', '2', '--store', 'memory://', '--listen', `127.0.0.1:${port}`])
  t.teardown(() => server.signal('SIGKILL'))
  t.equal(await server.exited, 1)
  t.ok(server.lines().some((line) => line.msg === 'a worker exited before it listened; stopping'))
})

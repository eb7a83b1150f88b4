/**
 * The servers of the shootout, each a real process on loopback: nixcas started from its CLI
 * (so the benchmark sees only its HTTP surface, whatever its storage layout), nginx serving
 * a `nix copy --to file://` cache with sendfile and accepting WebDAV PUTs, and s3rver behind
 * a proxy that adds latency to every request and counts them.
 */
import { request } from 'node:http'
import { readFile, writeFile, mkdir } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startFaultyProxy } from '../test/helpers/faulty-proxy.ts'
import { freePort } from '../test/helpers/ports.ts'
import { startS3 } from '../test/helpers/s3.ts'
import { runCommand, startDaemon, waitUntil, type Cleanup } from './lib/procs.ts'

export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..')

/**
 * The nixcas checkout to run: this repository, or SHOOTOUT_NIXCAS (another checkout with its
 * own node_modules, e.g. a release to compare against). Only its CLI is used.
 */
export const NIXCAS = process.env.SHOOTOUT_NIXCAS ?? REPO

/**
 * Extra Node options for every nixcas the benchmarks start, e.g. `--cpu-prof
 * --cpu-prof-dir=/tmp/prof` to profile the server under the very load that is measured
 * (NODE_OPTIONS refuses --cpu-prof).
 */
const NODE_ARGS = (process.env.BENCH_NIXCAS_NODE_ARGS ?? '').split(' ').filter((arg) => arg !== '')

export const CACHE_INFO = 'StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n'

/** One GET on a fresh connection (closed after), for set-up and readiness, never for timing. */
export function httpGet(url: string, timeoutMs = 10_000): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: timed out`)))
    req.on('error', reject)
    req.end()
  })
}

const answers = async (url: string): Promise<boolean> => (await httpGet(url, 2_000)).status === 200

async function logTail(file: string): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '')
  return text.length > 3000 ? `…${text.slice(-3000)}` : text
}

export interface Server {
  url: string
  pid: number
  stop(): Promise<void>
}

/** The environment without the operator's NIXCAS_* settings, so nixcas runs on its defaults (and `settings`). */
function nixcasEnv(settings: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { NIXCAS_LOG_LEVEL: 'warn' }
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('NIXCAS_')) env[key] = value
  return { ...env, ...settings }
}

let building: Promise<unknown> | undefined

/**
 * nixcas as `npm start` runs it: compiled to dist/ (once per benchmark process, from the
 * sources as they are), not through tsx, whose loader would add its own memory and
 * start-up time to every nixcas measured.
 */
function built(cleanup: Cleanup): Promise<unknown> {
  building ??= runCommand(cleanup, process.execPath, [join(NIXCAS, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], { cwd: NIXCAS, timeoutMs: 300_000 })
  return building
}

/**
 * `nixcas serve` (compiled) on a free port with `store`, and `settings` as NIXCAS_* variables.
 * Warnings and errors go to `logFile` (request logging off, as nginx's access log is off).
 * A port taken between the probe and the listen is retried on another.
 */
export async function startNixcas(cleanup: Cleanup, store: string, logFile: string, settings: Record<string, string> = {}): Promise<Server> {
  await built(cleanup)
  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    const args = [...NODE_ARGS, 'dist/src/cli.js', 'serve', '--listen', `127.0.0.1:${port}`, '--store', store]
    const daemon = startDaemon(cleanup, process.execPath, args, { cwd: NIXCAS, env: nixcasEnv(settings), logFile })
    const url = `http://127.0.0.1:${port}`
    try {
      await waitUntil('nixcas', () => answers(`${url}/nix-cache-info`), daemon, 60_000)
      return { url, pid: daemon.pid, stop: () => daemon.stop() }
    } catch (error) {
      await daemon.stop()
      const log = await logTail(logFile)
      if (attempt < 3 && log.includes('EADDRINUSE')) continue
      throw new Error(`${error instanceof Error ? error.message : String(error)}; its log (${logFile}):\n${log}`)
    }
  }
}

export interface Nginx {
  /** sendfile from the `nix copy --to file://` cache. */
  staticUrl: string
  /** WebDAV PUT into `davRoot` (which holds nix-cache-info, so Nix accepts it as a cache). */
  davUrl: string
  stop(): Promise<void>
}

/**
 * nginx with one worker (nixcas is one process too), access log off, keep-alive without a
 * request limit (so "one connection" means one), sendfile for reads, and the DAV module for
 * PUTs with temp files on the same file system as the root (a rename, not a copy).
 */
export async function startNginx(cleanup: Cleanup, dir: string, staticRoot: string, davRoot: string): Promise<Nginx> {
  await mkdir(join(dir, 'body'), { recursive: true })
  await writeFile(join(davRoot, 'nix-cache-info'), CACHE_INFO)
  for (let attempt = 1; ; attempt++) {
    const [staticPort, davPort] = [await freePort(), await freePort()]
    const conf = join(dir, 'nginx.conf')
    const temp = (name: string): string => `${name}_temp_path ${join(dir, name)};`
    await writeFile(
      conf,
      `daemon off; master_process on; worker_processes 1; ${process.getuid?.() === 0 ? 'user root;' : ''}
error_log stderr warn; pid ${join(dir, 'nginx.pid')};
events { worker_connections 4096; }
http {
  access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000000; keepalive_timeout 120s;
  default_type application/octet-stream; types { text/x-nix-narinfo narinfo; }
  client_body_temp_path ${join(dir, 'body')}; ${temp('proxy')} ${temp('fastcgi')} ${temp('uwsgi')} ${temp('scgi')}
  server { listen 127.0.0.1:${staticPort}; root ${staticRoot}; }
  server {
    listen 127.0.0.1:${davPort}; root ${davRoot};
    dav_methods PUT; create_full_put_path on; dav_access user:rw group:r all:r;
    client_max_body_size 0; client_body_buffer_size 1m;
  }
}
`,
    )
    const logFile = join(dir, 'nginx.log')
    const daemon = startDaemon(cleanup, 'nginx', ['-p', dir, '-c', conf, '-e', 'stderr'], { logFile })
    const staticUrl = `http://127.0.0.1:${staticPort}`
    const davUrl = `http://127.0.0.1:${davPort}`
    try {
      await waitUntil('nginx', async () => (await answers(`${staticUrl}/nix-cache-info`)) && answers(`${davUrl}/nix-cache-info`), daemon, 15_000)
      return { staticUrl, davUrl, stop: () => daemon.stop() }
    } catch (error) {
      await daemon.stop()
      const log = await logTail(logFile)
      if (attempt < 3 && log.includes('Address already in use')) continue
      throw new Error(`${error instanceof Error ? error.message : String(error)}; its log:\n${log}`)
    }
  }
}

export interface S3Behind {
  /** Store URL straight to s3rver (to fill it quickly). */
  direct: string
  /** Store URL through the latency proxy. */
  viaProxy: string
  /** Requests the proxy has forwarded since the last reset. */
  requests(): number
  resetRequests(): void
}

/** s3rver (in this process) and, in front of it, a proxy adding `latencyMs` to every request. */
export async function startS3Behind(cleanup: Cleanup, latencyMs: number): Promise<S3Behind> {
  const s3 = await startS3(cleanup, 'nixcas-shootout')
  const proxy = await startFaultyProxy(cleanup, s3.endpoint, { latency: latencyMs })
  const storeUrl = (endpoint: string): string =>
    `s3://${s3.bucket}/shootout?endpoint=${endpoint}&forcePathStyle=true&region=us-east-1&accessKeyId=S3RVER&secretAccessKey=S3RVER`
  return {
    direct: storeUrl(s3.endpoint),
    viaProxy: storeUrl(proxy.endpoint),
    requests: () => Object.values(proxy.counts).reduce((sum: number, count) => sum + (count ?? 0), 0),
    resetRequests: () => {
      proxy.counts = {}
    },
  }
}

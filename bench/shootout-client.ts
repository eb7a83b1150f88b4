/**
 * The clients of the shootout. The same client talks to nixcas and to nginx in every
 * measure, so the server is the difference: curl for transfers (many URLs in one process,
 * keep-alive, bodies to /dev/null, status and size of every transfer checked), wrk for
 * request rates, /proc for memory, du for bytes on disk.
 */
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { runCommand, sleep, timed, type Cleanup } from './lib/procs.ts'

export interface Transfer {
  /**
   * One connection: the sum of curl's own times per transfer (its start-up is not the
   * server's, and would weigh on a single fast transfer); several: wall time of the whole run.
   */
  seconds: number
  /** Body bytes moved (downloaded, or uploaded). */
  bytes: number
  /** TCP connections curl opened. */
  connections: number
}

let configs = 0

const quote = (text: string): string => `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`

/**
 * Runs one curl over `jobs` with at most `connections` transfers at a time (curl reuses
 * each connection for the next URL), and checks every transfer's status.
 */
async function curl(cleanup: Cleanup, dir: string, lines: string[], jobs: number, connections: number, options: { upload: boolean; timeoutMs: number }): Promise<Transfer> {
  const config = join(dir, `curl-${++configs}.conf`)
  await writeFile(config, `${lines.join('\n')}\n`)
  const args = ['--silent', '--show-error', '--config', config, '--write-out', `%{http_code} %{${options.upload ? 'size_upload' : 'size_download'}} %{num_connects} %{time_total}\\n`]
  if (options.upload) args.push('--header', 'Expect:')
  if (connections > 1) args.push('--parallel', '--parallel-immediate', '--parallel-max', String(connections))
  let stdout = ''
  const wall = await timed(async () => ({ stdout } = await runCommand(cleanup, 'curl', args, { timeoutMs: options.timeoutMs })))
  const results = stdout.trim().split('\n').filter(Boolean)
  if (results.length !== jobs) throw new Error(`curl reported ${results.length} transfers of ${jobs}`)
  let bytes = 0
  let opened = 0
  let transferring = 0
  for (const result of results) {
    const [status, size, connects, total] = result.split(' ').map(Number)
    const ok = options.upload ? status === 200 || status === 201 || status === 204 : status === 200
    if (!ok) throw new Error(`curl: a transfer answered ${status} (config ${config})`)
    bytes += size ?? 0
    opened += connects ?? 0
    transferring += total ?? 0
  }
  return { seconds: connections > 1 ? wall : transferring, bytes, connections: opened }
}

/** GETs every URL, bodies discarded, on `connections` keep-alive connections. */
export function curlGet(cleanup: Cleanup, dir: string, urls: string[], connections: number, timeoutMs = 600_000): Promise<Transfer> {
  const lines = urls.flatMap((url) => [`url = ${quote(url)}`, 'output = "/dev/null"'])
  return curl(cleanup, dir, lines, urls.length, connections, { upload: false, timeoutMs })
}

/** PUTs every file to its URL, `connections` at a time, without `Expect: 100-continue`. */
export function curlPut(cleanup: Cleanup, dir: string, uploads: { file: string; url: string }[], connections: number, timeoutMs = 900_000): Promise<Transfer> {
  const lines = uploads.flatMap(({ file, url }) => [`upload-file = ${quote(file)}`, `url = ${quote(url)}`, 'output = "/dev/null"'])
  return curl(cleanup, dir, lines, uploads.length, connections, { upload: true, timeoutMs })
}

/**
 * Requests per second with `wrk -t1 -c<connections> -d<seconds>s`; with `paths`, each
 * request takes the next path in turn (a Lua script), so a cache cannot answer from one
 * hot entry. Fails if any answer was not 2xx.
 */
export async function wrkRate(cleanup: Cleanup, dir: string, base: string, options: { connections: number; seconds: number; paths: string[] }): Promise<number> {
  const args = ['-t1', `-c${options.connections}`, `-d${options.seconds}s`]
  if (options.paths.length > 1) {
    const script = join(dir, `cycle-${++configs}.lua`)
    await writeFile(
      script,
      `local paths = { ${options.paths.map((path) => JSON.stringify(path)).join(', ')} }
local i = 0
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
`,
    )
    args.push('-s', script)
  }
  args.push(`${base}${options.paths[0] ?? '/'}`)
  const { stdout } = await runCommand(cleanup, 'wrk', args, { timeoutMs: (options.seconds + 60) * 1000 })
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(stdout)?.[1] ?? 0)
  if (non2xx > 0) throw new Error(`wrk: ${non2xx} answers were not 2xx:\n${stdout}`)
  const rate = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1])
  if (!(rate > 0)) throw new Error(`wrk: no rate in its output:\n${stdout}`)
  if (/Socket errors/.test(stdout)) console.warn(`wrk: ${/Socket errors.*/.exec(stdout)?.[0]}`)
  return rate
}

/** VmHWM (peak resident set) and VmRSS of a process, in bytes. */
export async function memoryOf(pid: number): Promise<{ peak: number; now: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024
  return { peak: field('VmHWM'), now: field('VmRSS') }
}

/** Samples VmRSS every `everyMs` until stopped; resolves with the highest sample. */
export function sampleRss(pid: number, everyMs = 50): { stop: () => Promise<number> } {
  let highest = 0
  let running = true
  const loop = (async () => {
    while (running) {
      highest = Math.max(highest, await memoryOf(pid).then((memory) => memory.now, () => 0))
      await sleep(everyMs)
    }
  })()
  return {
    stop: async () => {
      running = false
      await loop
      return highest
    },
  }
}

/** Bytes under `dir`: file sizes (apparent) and blocks allocated on disk. */
export async function du(cleanup: Cleanup, dir: string): Promise<{ apparent: number; allocated: number }> {
  const size = async (args: string[]): Promise<number> => Number((await runCommand(cleanup, 'du', [...args, dir], { timeoutMs: 300_000 })).stdout.split('\t')[0])
  return { apparent: await size(['-s', '-B1', '--apparent-size']), allocated: await size(['-s', '-B1']) }
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? (sorted[middle] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2
}

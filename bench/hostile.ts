/**
 * A real nixcas process (`serve` on an fs store, default settings) under what an attacker
 * with write access sends, measured from outside the way an operator would see it:
 * - compression bombs PUT as NARs: the server's peak RSS above its idle RSS (target < 150 MB);
 * - clients that leave mid-upload (a bomb whose every chunk is a duplicate, and distinct
 *   random data) and mid-download: the server's CPU in the seconds after they go;
 * - 20 concurrent `nix copy --to` (xz, zstd, none) with default settings: all must succeed,
 *   while a keep-alive client measures narinfo latency.
 *   npm run bench -- hostile
 * NIXCAS_BENCH_XZ_BOMB_GIB (default 20) sizes the xz bomb; the others are 2 GiB.
 */
import { spawn } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { Agent, request } from 'node:http'
import { homedir, tmpdir } from 'node:os'
import { join } from 'node:path'
import { MAGIC_BYTES, fileHeader, fileTrailer } from '../src/nix/nar-format.ts'
import { MB, hasCommand, nixEnv } from './lib.ts'
import { Cleanup, runCommand, sleep } from './lib/procs.ts'
import { machineLine, writeResultSection } from './results.ts'
import { loadClosure } from './shootout-corpus.ts'
import { memoryOf, sampleRss } from './shootout-client.ts'
import { startNixcas, type Server } from './shootout-servers.ts'

const GiB = 2 ** 30
/** Debian has no brotli CLI by default: node's own encoder, quality 5, stdin to stdout. */
const BROTLI = `${process.execPath} -e "const z = require('node:zlib'); require('node:stream').pipeline(process.stdin, z.createBrotliCompress({ params: { [z.constants.BROTLI_PARAM_QUALITY]: 5 } }), process.stdout, (e) => process.exit(e ? 1 : 0))"`
const HZ = 100
const BOMBS = join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'nixcas-bench', 'bombs')

type Row = Record<string, string | number>

interface Ctx {
  cleanup: Cleanup
  dir: string
  serial: number
}

const fresh = (ctx: Ctx, name: string): string => join(ctx.dir, `${name}-${++ctx.serial}`)

async function server(ctx: Ctx, settings: Record<string, string> = {}): Promise<Server> {
  const data = fresh(ctx, 'store')
  await mkdir(data)
  return startNixcas(ctx.cleanup, `file://${data}`, `${fresh(ctx, 'nixcas')}.log`, settings)
}

/** CPU seconds the process has used, all threads (decoder and ingest workers included). */
async function cpuSeconds(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).replace(/^.*\) /s, '').split(' ')
  return (Number(fields[11]) + Number(fields[12])) / HZ
}

/**
 * A file of NAR bytes (one regular file of `size` bytes from `contents`, a shell command),
 * piped through `compressor`. The NAR is made by the shell, never held by this process.
 */
async function makeNarFile(ctx: Ctx, name: string, size: number, contents: string, compressor: string): Promise<string> {
  const head = fresh(ctx, 'head')
  const tail = fresh(ctx, 'tail')
  await writeFile(head, Buffer.concat([MAGIC_BYTES, fileHeader(false, size)]))
  await writeFile(tail, fileTrailer(size))
  const out = join(ctx.dir, name)
  await runCommand(ctx.cleanup, 'sh', ['-c', `{ cat ${head}; ${contents} | head -c ${size}; cat ${tail}; } | ${compressor} > ${out}`], { timeoutMs: 3_600_000 })
  return out
}

/** `curl -T file` to `url`; resolves with the status, or kills curl after `killAfterMs`. */
function curlPut(ctx: Ctx, file: string, url: string, killAfterMs?: number): Promise<{ status: number; seconds: number; body: string }> {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint()
    const child = spawn('curl', ['--silent', '--show-error', '-H', 'Expect:', '-o', '-', '-w', '\n%{http_code}', '-T', file, url], { stdio: ['ignore', 'pipe', 'pipe'] })
    ctx.cleanup.track(child)
    let out = ''
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()))
    const timer = killAfterMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), killAfterMs)
    child.on('error', reject)
    child.on('close', () => {
      clearTimeout(timer)
      const lines = out.trimEnd().split('\n')
      resolve({ status: Number(lines.pop()), body: lines.join('\n'), seconds: Number(process.hrtime.bigint() - start) / 1e9 })
    })
  })
}

/** The server's CPU in [0, 1 s] and [1 s, 3 s] after now (when the client has just gone). */
async function cpuAfter(pid: number): Promise<{ first: number; after: number }> {
  const at0 = await cpuSeconds(pid)
  await sleep(1000)
  const at1 = await cpuSeconds(pid)
  await sleep(2000)
  const at3 = await cpuSeconds(pid)
  return { first: at1 - at0, after: at3 - at1 }
}

const idleRss = async (pid: number): Promise<number> => {
  await sleep(1500)
  return (await memoryOf(pid)).now
}

async function bombs(ctx: Ctx, xzGiB: number): Promise<{ rows: Row[]; files: Record<string, string> }> {
  const specs = [
    { method: 'zstd', ext: 'zst', size: 2 * GiB, compressor: 'zstd -c -q -19' },
    { method: 'bzip2', ext: 'bz2', size: 2 * GiB, compressor: 'bzip2 -c -9' },
    { method: 'xz', ext: 'xz', size: xzGiB * GiB, compressor: 'xz -c -T1 -6' },
    { method: 'br', ext: 'br', size: 2 * GiB, compressor: BROTLI },
  ]
  const rows: Row[] = []
  const files: Record<string, string> = {}
  const runs: { spec: (typeof specs)[number]; settings: Record<string, string>; label: string }[] = specs.map((spec) => ({ spec, settings: {}, label: 'defaults' }))
  runs.push({ spec: specs[0] as (typeof specs)[number], settings: { NIXCAS_MAX_NAR_SIZE: '100MiB' }, label: 'maxNarSize 100MiB' })
  for (const { spec, settings, label } of runs) {
    files[spec.method] ??= await (async () => {
      // Bombs are kept between runs: the 20 GiB xz one takes minutes to make.
      const cached = join(BOMBS, `${spec.size / GiB}GiB.nar.${spec.ext}`)
      if (await stat(cached).then((info) => info.size > 0, () => false)) return cached
      console.log(`making a ${spec.size / GiB} GiB ${spec.method} bomb (kept in ${BOMBS})`)
      await mkdir(BOMBS, { recursive: true })
      await rename(await makeNarFile(ctx, `bomb.nar.${spec.ext}`, spec.size, 'cat /dev/zero', spec.compressor), cached)
      return cached
    })()
    const file = files[spec.method] as string
    const warm = (files[`warm-${spec.method}`] ??= await makeNarFile(ctx, `warm.nar.${spec.ext}`, 4 * 2 ** 20, 'cat /dev/urandom', spec.compressor))
    const nixcas = await server(ctx, settings)
    // One small upload first, so what is measured is the bomb, not the start of the ingest workers.
    const warmed = await curlPut(ctx, warm, `${nixcas.url}/nar/warm.nar.${spec.ext}`)
    if (warmed.status !== 201) throw new Error(`the warm-up upload answered ${warmed.status}: ${warmed.body}`)
    const idle = await idleRss(nixcas.pid)
    const rss = sampleRss(nixcas.pid, 20)
    const cpu0 = await cpuSeconds(nixcas.pid)
    const put = await curlPut(ctx, file, `${nixcas.url}/nar/bomb-${spec.method}.nar.${spec.ext}`)
    const cpu = (await cpuSeconds(nixcas.pid)) - cpu0
    const peak = await rss.stop()
    const health = await new Promise<number>((resolve) => request(`${nixcas.url}/health`, (res) => resolve(res.statusCode ?? 0)).on('error', () => resolve(0)).end())
    console.log(`  ${spec.method} (${label}): ${put.status} in ${put.seconds.toFixed(1)} s, RSS +${Math.round((peak - idle) / MB)} MB`)
    rows.push({
      upload: `${spec.size / GiB} GiB of zeros as one file, ${spec.method}`,
      settings: label,
      'body MB': ((await stat(file)).size / MB).toFixed(2),
      answer: `${put.status}${put.status >= 400 ? ` ${/"message":"([^"]*)"/.exec(put.body)?.[1] ?? ''}` : ''}`,
      seconds: put.seconds.toFixed(1),
      'NAR MB/s': put.status === 201 ? Math.round(spec.size / MB / put.seconds) : '',
      'server CPU s': cpu.toFixed(1),
      'idle RSS MB': Math.round(idle / MB),
      'peak RSS growth MB': Math.round((peak - idle) / MB),
      'health after': health,
    })
    await nixcas.stop()
  }
  return { rows, files }
}

async function disconnects(ctx: Ctx, xzBomb: string): Promise<Row[]> {
  const rows: Row[] = []
  const random = await makeNarFile(ctx, 'random.nar', 2 * GiB, 'cat /dev/urandom', 'cat')
  const uploads = [
    { what: 'upload: xz bomb (every chunk a duplicate)', file: xzBomb, name: 'gone.nar.xz' },
    { what: 'upload: 2 GiB of random bytes, uncompressed', file: random, name: 'gone.nar' },
  ]
  for (const upload of uploads) {
    const nixcas = await server(ctx)
    const busy0 = await cpuSeconds(nixcas.pid)
    await curlPut(ctx, upload.file, `${nixcas.url}/nar/${upload.name}`, 5000)
    const busy = ((await cpuSeconds(nixcas.pid)) - busy0) / 5
    const { first, after } = await cpuAfter(nixcas.pid)
    rows.push({ what: upload.what, 'server CPU while the client sent (cores)': busy.toFixed(2), 'CPU s in the 1st second after it left': first.toFixed(2), 'CPU s in the 2 s after that': after.toFixed(2) })
    await nixcas.stop()
  }
  // A render: the random NAR stored, then a download cut after 1 s.
  const nixcas = await server(ctx)
  const put = await curlPut(ctx, random, `${nixcas.url}/nar/stored.nar`)
  const narHash = /"narHash":"sha256:([0-9a-z]+)"/.exec(put.body)?.[1]
  if (put.status !== 201 || narHash === undefined) throw new Error(`storing the random NAR answered ${put.status}: ${put.body}`)
  const busy0 = await cpuSeconds(nixcas.pid)
  await new Promise<void>((resolve) => {
    const child = spawn('curl', ['--silent', '--limit-rate', '50M', '-o', '/dev/null', `${nixcas.url}/nar/${narHash}.nar`], { stdio: 'ignore' })
    ctx.cleanup.track(child)
    setTimeout(() => child.kill('SIGKILL'), 1000)
    child.on('close', () => resolve())
  })
  const busy = (await cpuSeconds(nixcas.pid)) - busy0
  const { first, after } = await cpuAfter(nixcas.pid)
  rows.push({ what: 'download (curl --limit-rate 50M): the 2 GiB NAR, client gone after 1 s', 'server CPU while the client sent (cores)': busy.toFixed(2), 'CPU s in the 1st second after it left': first.toFixed(2), 'CPU s in the 2 s after that': after.toFixed(2) })
  await nixcas.stop()
  await rm(random)
  return rows
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN
}

/** GETs `url` on one keep-alive connection, one after another, until stopped; latencies in ms. */
function probe(url: string): { stop: () => Promise<{ latencies: number[]; failures: number }> } {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  const latencies: number[] = []
  let failures = 0
  let running = true
  const once = (): Promise<number> =>
    new Promise((resolve) => {
      request(url, { agent, timeout: 30_000 }, (res) => {
        res.resume()
        res.on('end', () => resolve(res.statusCode ?? 0))
      })
        .on('error', () => resolve(0))
        .end()
    })
  const loop = (async () => {
    while (running) {
      const start = process.hrtime.bigint()
      const status = await once()
      if (status === 200) latencies.push(Number(process.hrtime.bigint() - start) / 1e6)
      else failures++
      await sleep(10)
    }
  })()
  return {
    stop: async () => {
      running = false
      await loop
      agent.destroy()
      return { latencies, failures }
    },
  }
}

async function concurrentPushes(ctx: Ctx, pushes: number): Promise<Row[]> {
  const closure = await loadClosure(ctx.cleanup, true)
  const groups: string[][] = Array.from({ length: pushes }, () => [])
  closure.paths.forEach((path, index) => groups[index % pushes]?.push(path.storePath))
  const nixcas = await server(ctx)
  const probePath = join(ctx.dir, 'probe')
  await mkdir(probePath)
  await writeFile(join(probePath, 'hello'), 'a narinfo to ask for while the pushes run\n')
  const probeStorePath = (await runCommand(ctx.cleanup, 'nix-store', ['--add', probePath], { env: nixEnv, timeoutMs: 60_000 })).stdout.trim()
  const copyEnv = (): NodeJS.ProcessEnv => ({ ...nixEnv, XDG_CACHE_HOME: fresh(ctx, 'xdg'), NIX_CONFIG: `${nixEnv.NIX_CONFIG}\nsubstituters =` })
  await runCommand(ctx.cleanup, 'nix', ['copy', '--to', `${nixcas.url}?compression=none`, probeStorePath], { env: copyEnv(), timeoutMs: 120_000 })
  const narinfoUrl = `${nixcas.url}/${probeStorePath.slice('/nix/store/'.length, '/nix/store/'.length + 32)}.narinfo`
  const methods = ['xz', 'zstd', 'none'] as const
  const rss = sampleRss(nixcas.pid, 100)
  const latency = probe(narinfoUrl)
  const start = process.hrtime.bigint()
  const outcomes = await Promise.allSettled(
    groups.map((paths, index) =>
      runCommand(ctx.cleanup, 'nix', ['copy', '--to', `${nixcas.url}?compression=${methods[index % methods.length]}`, ...paths], { env: copyEnv(), timeoutMs: 40 * 60_000 }),
    ),
  )
  const seconds = Number(process.hrtime.bigint() - start) / 1e9
  const { latencies, failures } = await latency.stop()
  const peak = await rss.stop()
  let missing = 0
  for (const path of closure.paths) {
    const hash = path.storePath.slice('/nix/store/'.length, '/nix/store/'.length + 32)
    const status = await new Promise<number>((resolve) => request(`${nixcas.url}/${hash}.narinfo`, (res) => (res.resume(), resolve(res.statusCode ?? 0))).on('error', () => resolve(0)).end())
    if (status !== 200) missing++
  }
  await nixcas.stop()
  const failed = outcomes.filter((outcome) => outcome.status === 'rejected')
  for (const outcome of failed) console.log(`  a push failed: ${String(outcome.reason).slice(0, 400)}`)
  const sorted = [...latencies].sort((a, b) => a - b)
  return [
    {
      pushes: `${pushes} × nix copy --to (xz, zstd, none in turn), ${closure.paths.length} paths`,
      succeeded: `${pushes - failed.length} of ${pushes}`,
      'paths missing after': missing,
      seconds: seconds.toFixed(1),
      'narinfo GETs': latencies.length + failures,
      'narinfo failures': failures,
      'narinfo p50 ms': quantile(sorted, 0.5).toFixed(1),
      'narinfo p99 ms': quantile(sorted, 0.99).toFixed(1),
      'narinfo max ms': (sorted.at(-1) ?? NaN).toFixed(1),
      'server peak RSS MB': Math.round(peak / MB),
    },
  ]
}

const table = (rows: Row[]): string => {
  const keys = Object.keys(rows[0] ?? {})
  return [`| ${keys.join(' | ')} |`, `|${keys.map(() => '---').join('|')}|`, ...rows.map((line) => `| ${keys.map((key) => line[key]).join(' | ')} |`)].join('\n')
}

export async function benchHostile(): Promise<void> {
  for (const tool of ['xz', 'zstd', 'bzip2', 'curl', 'nix', 'nix-store']) if (!hasCommand(tool)) throw new Error(`${tool} is needed by this benchmark`)
  const cleanup = new Cleanup()
  const uninstall = cleanup.installSignalHandlers()
  const ctx: Ctx = { cleanup, dir: await mkdtemp(join(tmpdir(), 'nixcas-bench-hostile-')), serial: 0 }
  cleanup.teardown(() => rm(ctx.dir, { recursive: true, force: true }))
  try {
    const xzGiB = Number(process.env.NIXCAS_BENCH_XZ_BOMB_GIB ?? 20)
    const bomb = await bombs(ctx, xzGiB)
    console.table(bomb.rows)
    const gone = await disconnects(ctx, bomb.files.xz as string)
    console.table(gone)
    const pushes = await concurrentPushes(ctx, 20)
    console.table(pushes)
    const load = (await readFile('/proc/loadavg', 'utf8')).split(' ')[0]
    await writeResultSection(
      'hostile',
      [
        '## hostile: bombs, clients that leave, 20 concurrent pushes — a real server, default settings',
        '',
        `\`npm run bench -- hostile\` — ${machineLine()}; load average ${load} at the end`,
        '',
        'Each row is a fresh `nixcas serve --store file://…` process, measured from /proc after one 4 MiB upload of the same method (so the ingest workers have started): RSS sampled every 20 ms, growth over its idle RSS before the bomb (target: < 150 MB). Bodies are sent with `curl -T`.',
        '',
        table(bomb.rows),
        '',
        'Clients that leave: curl killed 5 s into an upload (1 s into a download); the server’s CPU (all threads) right after (target: none after the first second).',
        '',
        table(gone),
        '',
        'Concurrent pushes: the quick shootout corpus (`nix-store --add` of /usr paths) split round-robin into 20 `nix copy --to http://…?compression=…` runs started at once, each with its own narinfo cache; meanwhile one keep-alive client GETs a narinfo every 10 ms (target: all pushes succeed, p99 < 100 ms).',
        '',
        table(pushes),
      ].join('\n'),
    )
  } finally {
    await cleanup.run()
    uninstall()
  }
}

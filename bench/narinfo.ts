/**
 * narinfo throughput: nixcas (from its CLI, as a user runs it) beside nginx sending the very
 * same narinfo bytes from files, in one run, with wrk: one keep-alive connection cycling
 * through every path, and one hot narinfo on 32 connections. nixcas runs with one worker
 * process and with several (`workers`), so the table shows what the extra processes buy.
 *   npm run bench -- narinfo
 *   NARINFO_BENCH_WORKERS=1,2,3 NARINFO_BENCH_REPS=3 npm run bench -- narinfo
 */
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { writeNar } from '../src/nix/nar-writer.ts'
import { encodeNixbase32 } from '../src/nix/nixbase32.ts'
import { formatSecretKey, generateSecretKey } from '../src/nix/signing.ts'
import { onPath } from './lib.ts'
import { Cleanup } from './lib/procs.ts'
import { machineLine, writeResultSection } from './results.ts'
import { median, wrkRate } from './shootout-client.ts'
import { inTurn } from './shootout-context.ts'
import { CACHE_INFO, startNginx, startNixcas, type Server } from './shootout-servers.ts'

const PATHS = Number(process.env.NARINFO_BENCH_PATHS ?? 300)
const REPS = Number(process.env.NARINFO_BENCH_REPS ?? 3)
const SECONDS = Number(process.env.NARINFO_BENCH_SECONDS ?? 5)
/** The worker counts nixcas is measured with. */
const WORKERS = (process.env.NARINFO_BENCH_WORKERS ?? '1,2').split(',').map(Number)

interface BenchPath {
  hash: string
  storePath: string
  nar: Buffer
  narHash: string
  references: string[]
}

/** A one-file NAR of a few KiB, and a store path that references a few earlier ones, as real narinfos do. */
async function makePath(index: number, earlier: readonly BenchPath[]): Promise<BenchPath> {
  const contents = randomBytes(512 + (index % 16) * 256)
  const parts: Uint8Array[] = []
  for await (const part of writeNar([{ type: 'file', name: null, executable: false, size: contents.length }, { type: 'data', bytes: contents }])) parts.push(part)
  const nar = Buffer.concat(parts)
  const hash = encodeNixbase32(randomBytes(20))
  const references = earlier.slice(-1 - (index % 6)).map((path) => path.storePath.slice('/nix/store/'.length))
  return { hash, storePath: `/nix/store/${hash}-bench-${index}`, nar, narHash: encodeNixbase32(createHash('sha256').update(nar).digest()), references }
}

const narinfoOf = (path: BenchPath): string =>
  `StorePath: ${path.storePath}\nURL: nar/${path.narHash}.nar\nCompression: none\nNarHash: sha256:${path.narHash}\nNarSize: ${path.nar.length}\nReferences: ${[...path.references].sort().join(' ')}\n`

async function put(url: string, body: Buffer | string): Promise<void> {
  const answer = await fetch(url, { method: 'PUT', body })
  if (!answer.ok) throw new Error(`PUT ${url}: ${answer.status} ${await answer.text()}`)
}

type Rates = { cycle: number[]; hot: number[] }

export async function benchNarinfo(): Promise<void> {
  if (!onPath('wrk') || !onPath('nginx')) {
    console.log('narinfo: needs wrk and nginx (apt-get install wrk nginx-light)')
    return
  }
  const cleanup = new Cleanup()
  const uninstall = cleanup.installSignalHandlers()
  const dir = await mkdtemp(join(tmpdir(), 'nixcas-bench-narinfo-'))
  cleanup.teardown(() => rm(dir, { recursive: true, force: true }))
  try {
    const key = generateSecretKey('bench.example.org-1')
    const keyFile = join(dir, 'secret.key')
    await writeFile(keyFile, formatSecretKey(key))
    const store = `file://${join(dir, 'store')}`
    // NIXCAS_WORKERS only when it matters: a checkout from before the setting (SHOOTOUT_NIXCAS) still runs.
    const settings = (workers: number): Record<string, string> => ({ NIXCAS_SIGNING_KEYS: keyFile, ...(workers === 1 ? {} : { NIXCAS_WORKERS: String(workers) })  })

    // Filled through one server; every configuration below then serves the same store.
    const paths: BenchPath[] = []
    for (let index = 0; index < PATHS; index++) paths.push(await makePath(index, paths))
    const filler = await startNixcas(cleanup, store, join(dir, 'fill.log'), settings(1))
    for (const path of paths) {
      await put(`${filler.url}/nar/${path.narHash}.nar`, path.nar)
      await put(`${filler.url}/${path.hash}.narinfo`, narinfoOf(path))
    }
    // nginx sends what nixcas answers, byte for byte (signature included).
    const files = join(dir, 'files')
    await mkdir(files)
    let bodyBytes = 0
    for (const path of paths) {
      const text = await (await fetch(`${filler.url}/${path.hash}.narinfo`)).text()
      bodyBytes += text.length
      await writeFile(join(files, `${path.hash}.narinfo`), text)
    }
    await writeFile(join(files, 'nix-cache-info'), CACHE_INFO)
    await filler.stop()
    const davRoot = join(dir, 'dav')
    await mkdir(davRoot)
    const nginx = await startNginx(cleanup, join(dir, 'nginx'), files, davRoot)

    const subjects = ['nginx', ...WORKERS.map((workers) => `nixcas ×${workers}`)]
    const servers = new Map<string, Server | { url: string }>([['nginx', { url: nginx.staticUrl }]])
    for (const workers of WORKERS) servers.set(`nixcas ×${workers}`, await startNixcas(cleanup, store, join(dir, `nixcas-${workers}.log`), settings(workers)))
    const rates = new Map<string, Rates>(subjects.map((subject) => [subject, { cycle: [], hot: [] }]))
    const cyclePaths = paths.map((path) => `/${path.hash}.narinfo`)
    const hotPath = [`/${paths[0]?.hash}.narinfo`]
    const loadBefore = loadavg()[0] ?? 0
    for (const subject of subjects) {
      // Untimed: every server's caches (and the JIT) warm before the first measure.
      const url = (servers.get(subject) as { url: string }).url
      await wrkRate(cleanup, dir, url, { connections: 4, seconds: 2, paths: cyclePaths })
    }
    for (let rep = 0; rep < REPS; rep++) {
      await inTurn(rep, subjects, async (subject) => {
        const url = (servers.get(subject) as { url: string }).url
        const rate = rates.get(subject) as Rates
        rate.cycle.push(await wrkRate(cleanup, dir, url, { connections: 1, seconds: SECONDS, paths: cyclePaths }))
        rate.hot.push(await wrkRate(cleanup, dir, url, { connections: 32, seconds: SECONDS, paths: hotPath }))
      })
    }
    const loadAfter = loadavg()[0] ?? 0
    for (const server of servers.values()) if ('stop' in server) await server.stop()

    const nginxRates = rates.get('nginx') as Rates
    const row = (what: string, pick: (rate: Rates) => number[]): string => {
      const base = median(pick(nginxRates))
      const cells = subjects.map((subject) => {
        const value = median(pick(rates.get(subject) as Rates))
        return subject === 'nginx' ? `${(value / 1000).toFixed(1)}k` : `${(value / 1000).toFixed(1)}k (${(value / base).toFixed(2)}×)`
      })
      return `| ${what} | ${cells.join(' | ')} |`
    }
    const markdown = [
      '## narinfo throughput (`npm run bench -- narinfo`)',
      '',
      `${machineLine()}; load average ${loadBefore.toFixed(2)} before, ${loadAfter.toFixed(2)} after.`,
      `${PATHS} signed narinfos (${Math.round(bodyBytes / PATHS)} bytes on average) in an fs store; nginx (1 worker, sendfile) sends the same bytes from files.`,
      `wrk -t1, ${SECONDS} s per measure, median of ${REPS}; req/s, and nixcas / nginx. nixcas ×N runs N worker processes (\`workers\`).`,
      '',
      `| measure | ${subjects.join(' | ')} |`,
      `|---|${subjects.map(() => '---').join('|')}|`,
      row('narinfo, 1 connection cycling through all', (rate) => rate.cycle),
      row('hot narinfo, 32 connections', (rate) => rate.hot),
    ].join('\n')
    console.log(markdown)
    await writeResultSection('narinfo', markdown)
  } finally {
    await cleanup.run()
    uninstall()
  }
}

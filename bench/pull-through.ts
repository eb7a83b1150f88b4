/**
 * Pull-through, side by side in one run, on loopback and with 20 ms added to every upstream
 * request (a delaying proxy in front of nginx): a NAR downloaded straight from nginx (a
 * binary cache directory served with sendfile), the first download of it through nixcas
 * (fetched from that nginx, decoded, checked and stored as it is served), a second one
 * (stored by then), and the same NAR uploaded to another nixcas and read back by a fresh
 * process on that store (a local NAR: the first this process renders, as the second is).
 * Every nixcas is its own `nixcas serve` process with a fresh store, so each first
 * download really is one. Upstream NAR files uncompressed and zstd; medians of BENCH_RUNS
 * runs (default 3). Then the bytes nixcas stores after pulling two versions of a tree
 * (/usr/bin and a copy with a third of its files edited) against the upstream's files
 * (compression=none). The NAR is of BENCH_TREE (default /usr/share/doc).
 *
 *     npm run bench -- pull-through
 */
import { readdirSync, statSync } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { dumpPath } from '../src/fs/dump-path.ts'
import { writeNar } from '../src/nix/nar-writer.ts'
import { formatPublicKey, generateSecretKey, type SecretKey } from '../src/nix/signing.ts'
import { startFaultyProxy } from '../test/helpers/faulty-proxy.ts'
import { collect } from '../test/helpers/streams.ts'
import { initCache, publish } from '../test/helpers/upstream-cache.ts'
import { Cleanup, sleep, startDaemon, waitUntil } from './lib/procs.ts'
import { curlGet, median } from './shootout-client.ts'
import { writeResultSection } from './results.ts'
import { DOC, loadTwoVersions } from './shootout-corpus.ts'
import { httpGet, startNginx, startNixcas, type Server } from './shootout-servers.ts'
import { freePort } from '../test/helpers/ports.ts'

const LATENCY_MS = 20

/** Seconds curl takes to GET `url` (its body to /dev/null, status and size checked): the client every column shares. */
async function download(bench: Bench, url: string): Promise<number> {
  return (await curlGet(bench.cleanup, bench.dir, [url], 1)).seconds
}

function treeBytes(dir: string): number {
  let total = 0
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) if (entry.isFile()) total += statSync(join(entry.parentPath, entry.name)).size
  return total
}

const mbps = (bytes: number, seconds: number): string => `${(bytes / seconds / 1e6).toFixed(0)} MB/s`
const narUrlIn = (narinfo: string): string => /^URL: (.*)$/m.exec(narinfo)?.[1] ?? 'missing'

async function text(url: string): Promise<string> {
  const response = await fetch(url)
  if (response.status !== 200) throw new Error(`GET ${url}: ${response.status}`)
  return response.text()
}

interface Bench {
  cleanup: Cleanup
  dir: string
  root: string
  key: SecretKey
  runs: number
}

/** A fresh `nixcas serve` with its own store, pulling through from `upstream`. */
async function pullingNixcas(bench: Bench, name: string, upstream: string): Promise<{ server: Server; store: string }> {
  const store = join(bench.dir, name)
  const upstreams = JSON.stringify([{ url: `${upstream}/`, publicKeys: [formatPublicKey(bench.key.publicKey)], timeout: '30s' }])
  const server = await startNixcas(bench.cleanup, `file://${store}`, join(bench.dir, `${name}.log`), {
    NIXCAS_UPSTREAMS: upstreams,
    NIXCAS_UPSTREAM_SPOOL_DIR: join(bench.dir, 'spool'),
  })
  return { server, store }
}

/** Polls until nixcas stores the path (only a stored path has a listing). */
async function untilStored(url: string, hash: string): Promise<void> {
  for (let waited = 0; waited < 600_000; waited += 100) {
    if ((await fetch(`${url}/${hash}.ls`)).status === 200) return
    await sleep(100)
  }
  throw new Error(`${hash} was not stored within 10 minutes`)
}

/** A bare relay (bench/lib/relay.ts) in front of `upstream`, as its own process. */
async function startRelay(bench: Bench, upstream: string): Promise<string> {
  const port = await freePort()
  const script = join(dirname(fileURLToPath(import.meta.url)), 'lib', 'relay.ts')
  const daemon = startDaemon(bench.cleanup, process.execPath, ['--import', 'tsx', script, `${upstream}/`, String(port)], { logFile: join(bench.dir, `relay-${port}.log`) })
  const url = `http://127.0.0.1:${port}`
  await waitUntil('the relay', async () => (await httpGet(`${url}/nix-cache-info`)).status === 200, daemon, 30_000)
  return url
}

interface Times {
  direct: number[]
  relay: number[]
  first: number[]
  second: number[]
  local: number[]
}

/** Runs of direct, first, second and local for one upstream compression and latency. */
async function measure(bench: Bench, nar: Buffer, method: 'none' | 'zstd', upstream: string, relay: string, local: () => Promise<Server>): Promise<Times> {
  const times: Times = { direct: [], relay: [], first: [], second: [], local: [] }
  for (let run = 0; run < bench.runs; run++) {
    const path = await publish(bench.root, nar, method, bench.key)
    const { server, store } = await pullingNixcas(bench, `nixcas-${method}-${upstream.slice(-5)}-${run}`, upstream)
    const narUrl = narUrlIn(await text(`${server.url}/${path.hash}.narinfo`))
    const fileUrl = narUrlIn(await text(`${upstream}/${path.hash}.narinfo`))
    times.direct.push(await download(bench, `${upstream}/${fileUrl}`))
    times.relay.push(await download(bench, `${relay}/${fileUrl}`))
    times.first.push(await download(bench, `${server.url}/${narUrl}`))
    await untilStored(server.url, path.hash)
    times.second.push(await download(bench, `${server.url}/${narUrl}`))
    // Like the second download, the first NAR this process renders from its store.
    const localServer = await local()
    times.local.push(await download(bench, `${localServer.url}/${narUrl}`))
    await localServer.stop()
    await server.stop()
    await rm(store, { recursive: true, force: true })
  }
  return times
}

/** The bytes nixcas stores for two versions of a tree pulled through, against the upstream's NAR files. */
async function storedBytes(bench: Bench, upstream: string): Promise<{ upstream: number; stored: number; source: string; edited: number }> {
  const versions = await loadTwoVersions(bench.cleanup)
  const { server, store } = await pullingNixcas(bench, 'nixcas-two-versions', upstream)
  let upstreamBytes = 0
  for (const version of [versions.v1, versions.v2]) {
    const nar = await collect(writeNar(dumpPath(version.storePath)))
    const path = await publish(bench.root, nar, 'none', bench.key)
    upstreamBytes += path.fileSize
    await download(bench, `${server.url}/${narUrlIn(await text(`${server.url}/${path.hash}.narinfo`))}`)
    await untilStored(server.url, path.hash)
  }
  await server.stop()
  return { upstream: upstreamBytes, stored: treeBytes(store), source: versions.source, edited: versions.edited }
}

export async function benchPullThrough(): Promise<void> {
  const cleanup = new Cleanup()
  const uninstall = cleanup.installSignalHandlers()
  const dir = await mkdtemp(join(tmpdir(), 'nixcas-bench-pull-'))
  cleanup.teardown(() => rm(dir, { recursive: true, force: true }))
  try {
    const tree = process.env.BENCH_TREE ?? DOC
    const nar = await collect(writeNar(dumpPath(tree)))
    const bench: Bench = { cleanup, dir, root: join(dir, 'upstream'), key: generateSecretKey('bench-upstream-1'), runs: Number(process.env.BENCH_RUNS ?? 3) }
    await initCache(bench.root)
    await mkdir(join(dir, 'dav'))
    const nginx = await startNginx(cleanup, dir, bench.root, join(dir, 'dav'))
    const proxy = await startFaultyProxy(cleanup, nginx.staticUrl, { latency: LATENCY_MS })
    // The local NAR: uploaded to a nixcas store of its own once, read back every run by a
    // fresh process on that store (as the second download is the first render of its process).
    const local = (): Promise<Server> => startNixcas(cleanup, `file://${join(dir, 'nixcas-local')}`, join(dir, 'nixcas-local.log'))
    const uploader = await local()
    const { narHash } = (await (await fetch(`${uploader.url}/nar/upload.nar`, { method: 'PUT', body: nar })).json()) as { narHash: string }
    await uploader.stop()
    console.log(`NAR of ${tree}: ${(nar.length / 1e6).toFixed(1)} MB (${narHash}); ${bench.runs} runs each, medians`)
    const load = loadavg().map((value) => value.toFixed(2)).join(', ')
    const rows: string[] = []
    const relays = new Map([nginx.staticUrl, proxy.endpoint].map((upstream) => [upstream, '']))
    for (const upstream of relays.keys()) relays.set(upstream, await startRelay(bench, upstream))
    for (const [where, upstream] of [['loopback', nginx.staticUrl], [`+${LATENCY_MS} ms per request`, proxy.endpoint]] as const) {
      for (const method of ['none', 'zstd'] as const) {
        const times = await measure(bench, nar, method, upstream, relays.get(upstream) ?? '', local)
        const [direct, relayed, first, second, fromLocal] = [times.direct, times.relay, times.first, times.second, times.local].map(median) as [number, number, number, number, number]
        const row = `| ${where} | ${method} | ${mbps(nar.length, direct)} | ${mbps(nar.length, relayed)} (${(direct / relayed).toFixed(2)}) | ${mbps(nar.length, first)} | ${mbps(nar.length, second)} | ${mbps(nar.length, fromLocal)} | ${(direct / first).toFixed(2)} | ${(fromLocal / first).toFixed(2)} | ${(fromLocal / second).toFixed(2)} |`
        console.log(row)
        rows.push(row)
      }
    }
    const stored = await storedBytes(bench, nginx.staticUrl)
    const ratio = stored.stored / stored.upstream
    console.log(`two versions of ${stored.source} (${stored.edited} files edited): upstream ${(stored.upstream / 1e6).toFixed(1)} MB, nixcas ${(stored.stored / 1e6).toFixed(1)} MB (${ratio.toFixed(2)}×)`)
    const endLoad = loadavg().map((value) => value.toFixed(2)).join(', ')
    await writeResultSection(
      'pull-through',
      `## pull-through (\`npm run bench -- pull-through\`)

NAR of ${tree}, ${(nar.length / 1e6).toFixed(1)} MB; medians of ${bench.runs} runs; each first download into a fresh \`nixcas serve\` process, each local NAR read by a fresh process on the store it was uploaded to; MB/s of NAR bytes (for zstd, "direct" is the compressed file, not decoded), each GET by curl as in the shootout (time_total: its own start-up left out). "bare relay" is bench/lib/relay.ts, its own process: each GET forwarded to the upstream and streamed back unread, unchecked and unkept, the ceiling of any server that relays the bytes through one Node process on these cores. Load average ${load} at the start, ${endLoad} at the end.

| upstream | upstream file | direct from nginx | bare relay (÷ direct) | first through nixcas | second through nixcas | local NAR | first/direct | first/local | second/local |
|---|---|---|---|---|---|---|---|---|---|
${rows.join('\n')}

Stored after pulling two versions of ${stored.source} (${stored.edited} files edited) through nixcas, upstream compression=none: upstream ${(stored.upstream / 1e6).toFixed(1)} MB, nixcas ${(stored.stored / 1e6).toFixed(1)} MB: **${ratio.toFixed(2)}×**.`,
    )
  } finally {
    await cleanup.run()
    uninstall()
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await benchPullThrough()

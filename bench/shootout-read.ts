/**
 * The read side of the shootout: nixcas (filled by `nix copy`) and nginx (sendfile from a
 * `nix copy --to file://` cache) serving the same closure, to the same clients.
 */
import { mkdir } from 'node:fs/promises'
import { MB } from './lib.ts'
import { runCommand, timed } from './lib/procs.ts'
import { curlGet, memoryOf, sampleRss, wrkRate } from './shootout-client.ts'
import { fresh, inTurn, narOf, nixcasOn, sum, type Context } from './shootout-context.ts'

export interface Pair {
  nixcas: number[]
  nginx: number[]
}

export interface ReadResults {
  /** Closure NAR download, MB/s, per connection count. */
  download: Record<1 | 4, Pair>
  /** narinfo req/s: one connection cycling through all, and one hot narinfo on 32. */
  narinfoCycle: Pair
  narinfoHot: Pair
  /** The /usr/share/doc NAR, MB/s; `dump` is `nix-store --dump` of the same path. */
  docNar: Pair & { dump: number[] }
  rss: { peak: number; sampled: number; idle: number; rate: number }
}

const pair = (): Pair => ({ nixcas: [], nginx: [] })
const SERVERS = ['nginx', 'nixcas'] as const

/** Reads from the nixcas store in `data` (already filled with the closure) beside nginx. */
export async function measureReads(ctx: Context, data: string): Promise<ReadResults> {
  const results: Omit<ReadResults, 'rss'> = { download: { 1: pair(), 4: pair() }, narinfoCycle: pair(), narinfoHot: pair(), docNar: { ...pair(), dump: [] } }
  const nixcas = await nixcasOn(ctx, `file://${data}`)
  const logical = sum(ctx.closure.map((path) => path.narSize))
  const urls = { nginx: ctx.closure.map((path) => `${ctx.nginx.staticUrl}/${path.narUrl}`), nixcas: [] as string[] }
  for (const path of ctx.closure) {
    const nar = await narOf(nixcas.url, path.storePath)
    if (nar.narSize !== path.narSize) throw new Error(`nixcas gives NarSize ${nar.narSize} for ${path.storePath}, the cache ${path.narSize}`)
    urls.nixcas.push(`${nixcas.url}/${nar.narUrl}`)
  }
  const docIndex = ctx.closure.findIndex((path) => path.storePath === ctx.doc.storePath)
  const base = { nginx: ctx.nginx.staticUrl, nixcas: nixcas.url }
  const work = fresh(ctx, 'clients')
  await mkdir(work)

  // One untimed pass each: the page cache and each server's own caches warm for both.
  for (const server of SERVERS) await curlGet(ctx.cleanup, work, urls[server], 1)
  for (let rep = 0; rep < ctx.reps; rep++) {
    for (const connections of [1, 4] as const) {
      await inTurn(rep, SERVERS, async (server) => {
        const transfer = await curlGet(ctx.cleanup, work, urls[server], connections)
        if (transfer.bytes !== logical) throw new Error(`${server}: ${transfer.bytes} bytes downloaded, the closure's NARs are ${logical}`)
        if (transfer.connections > connections) console.warn(`curl opened ${transfer.connections} connections to ${server}, not ${connections}`)
        results.download[connections][server].push(transfer.bytes / MB / transfer.seconds)
      })
    }
    const narinfos = ctx.closure.map((path) => `/${path.hashPart}.narinfo`)
    await inTurn(rep, SERVERS, async (server) => {
      results.narinfoCycle[server].push(await wrkRate(ctx.cleanup, work, base[server], { connections: 1, seconds: 5, paths: narinfos }))
      results.narinfoHot[server].push(await wrkRate(ctx.cleanup, work, base[server], { connections: 32, seconds: 5, paths: [`/${ctx.doc.hashPart}.narinfo`] }))
    })
    await inTurn(rep, SERVERS, async (server) => {
      const transfer = await curlGet(ctx.cleanup, work, [urls[server][docIndex] as string], 1)
      results.docNar[server].push(transfer.bytes / MB / transfer.seconds)
    })
    const seconds = await timed(() => runCommand(ctx.cleanup, 'nix-store', ['--dump', ctx.doc.storePath], { stdoutFile: '/dev/null', timeoutMs: 300_000 }))
    results.docNar.dump.push(ctx.doc.narSize / MB / seconds)
  }
  await nixcas.stop()
  return { ...results, rss: await measureRss(ctx, data, urls.nixcas[docIndex] as string, work) }
}

/**
 * Peak memory of a fresh nixcas process while 32 clients download the doc NAR at once:
 * VmHWM (the kernel's peak), and the highest VmRSS sampled every 50 ms as a check.
 */
async function measureRss(ctx: Context, data: string, docUrl: string, work: string): Promise<ReadResults['rss']> {
  const nixcas = await nixcasOn(ctx, `file://${data}`)
  const path = new URL(docUrl).pathname
  const idle = (await memoryOf(nixcas.pid)).now
  const sampler = sampleRss(nixcas.pid)
  const transfer = await curlGet(ctx.cleanup, work, Array.from({ length: 32 }, () => `${nixcas.url}${path}`), 32).finally(() => sampler.stop())
  const sampled = await sampler.stop()
  const { peak } = await memoryOf(nixcas.pid)
  await nixcas.stop()
  if (transfer.bytes !== 32 * ctx.doc.narSize) throw new Error(`32 downloads of the doc NAR moved ${transfer.bytes} bytes`)
  if (transfer.connections !== 32) console.warn(`curl opened ${transfer.connections} connections for 32 concurrent downloads`)
  return { peak, sampled, idle, rate: transfer.bytes / MB / transfer.seconds }
}

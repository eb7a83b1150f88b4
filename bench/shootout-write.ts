/**
 * The write side of the shootout: the same `nix copy` and the same curl PUTs into nixcas
 * and into nginx's WebDAV root; what nixcas keeps on disk for the closure and for two
 * versions of a tree; and the doc NAR read back from S3 with latency on every request.
 * Each timed write goes to an empty target, after a sync, so no run pays for another.
 */
import { mkdir, readdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { timed } from './lib/procs.ts'
import { curlGet, curlPut, du } from './shootout-client.ts'
import { clearDav, fresh, inTurn, narOf, nixCopy, nixcasOn, sum, sync, type Context } from './shootout-context.ts'
import type { TwoVersions } from './shootout-corpus.ts'
import type { Pair } from './shootout-read.ts'
import { startS3Behind } from './shootout-servers.ts'

export type Du = Awaited<ReturnType<typeof du>>

export interface PushResults {
  /** Seconds of `nix copy --to …?compression=none` into nixcas, nginx WebDAV, and a file:// cache. */
  push: Pair & { file: number[] }
  /** The nixcas data dir the last push filled, kept for the read side. */
  data: string
}

/** The closure pushed with `nix copy` to each target, `reps` times, each into an empty one. */
export async function measurePush(ctx: Context): Promise<PushResults> {
  const paths = ctx.closure.map((path) => path.storePath)
  const push: PushResults['push'] = { nixcas: [], nginx: [], file: [] }
  let kept: string | undefined
  for (let rep = 0; rep < ctx.reps; rep++) {
    await inTurn(rep, ['nginx', 'nixcas', 'file'] as const, async (target) => {
      if (target === 'nginx') {
        await clearDav(ctx)
        await sync(ctx)
        push.nginx.push(await timed(() => nixCopy(ctx, `${ctx.nginx.davUrl}?compression=none`, paths)))
        const narinfos = (await readdir(ctx.dav)).filter((name) => name.endsWith('.narinfo')).length
        if (narinfos !== paths.length) throw new Error(`nix copy left ${narinfos} narinfos in nginx's WebDAV root, not ${paths.length}`)
      } else if (target === 'nixcas') {
        const data = fresh(ctx, 'store')
        const nixcas = await nixcasOn(ctx, `file://${data}`)
        await sync(ctx)
        push.nixcas.push(await timed(() => nixCopy(ctx, `${nixcas.url}?compression=none`, paths)))
        await nixcas.stop()
        if (kept) await rm(kept, { recursive: true, force: true })
        kept = data
      } else {
        const cache = fresh(ctx, 'file-cache')
        await sync(ctx)
        push.file.push(await timed(() => nixCopy(ctx, `file://${cache}?compression=none`, paths)))
        await rm(cache, { recursive: true, force: true })
      }
    })
  }
  await clearDav(ctx)
  if (kept === undefined) throw new Error('no push to nixcas ran')
  return { push, data: kept }
}

/** Seconds to PUT the closure's NAR files, 1 and 4 at a time, into nixcas and into nginx WebDAV. */
export async function measureIngest(ctx: Context): Promise<Record<1 | 4, Pair>> {
  const ingest: Record<1 | 4, Pair> = { 1: { nixcas: [], nginx: [] }, 4: { nixcas: [], nginx: [] } }
  const logical = sum(ctx.closure.map((path) => path.narSize))
  const uploads = (base: string): { file: string; url: string }[] => ctx.closure.map((path) => ({ file: join(ctx.cache, path.narUrl), url: `${base}/${path.narUrl}` }))
  const work = fresh(ctx, 'clients')
  await mkdir(work)
  for (let rep = 0; rep < ctx.reps; rep++) {
    for (const connections of [1, 4] as const) {
      await inTurn(rep, ['nginx', 'nixcas'] as const, async (server) => {
        let seconds: number
        if (server === 'nginx') {
          await clearDav(ctx)
          await sync(ctx)
          const transfer = await curlPut(ctx.cleanup, work, uploads(ctx.nginx.davUrl), connections)
          if (transfer.bytes !== logical) throw new Error(`curl sent nginx ${transfer.bytes} bytes of ${logical}`)
          seconds = transfer.seconds
        } else {
          const data = fresh(ctx, 'store')
          const nixcas = await nixcasOn(ctx, `file://${data}`)
          await sync(ctx)
          const transfer = await curlPut(ctx.cleanup, work, uploads(nixcas.url), connections)
          if (transfer.bytes !== logical) throw new Error(`curl sent nixcas ${transfer.bytes} bytes of ${logical}`)
          seconds = transfer.seconds
          await nixcas.stop()
          await rm(data, { recursive: true, force: true })
        }
        ingest[connections][server].push(seconds)
      })
    }
  }
  await clearDav(ctx)
  return ingest
}

export interface S3Results {
  /** Seconds of the GET as a new process's first request, and as one from a process that served another NAR first. */
  seconds: number[]
  warmSeconds: number[]
  /** Requests nixcas made to S3 (counted at the proxy) for each GET of the NAR, in either process. */
  requests: number[]
  latencyMs: number
}

/**
 * The doc NAR from nixcas on S3 (s3rver) with `latencyMs` added to every S3 request. It is
 * uploaded straight to s3rver, with a small NAR beside it; each measured GET is from a new
 * nixcas process, so no in-process cache answers for S3: once as the process's first
 * request, once after it served the small NAR (a running server, whose code is compiled,
 * has not laid this NAR out either).
 */
export async function measureS3(ctx: Context, latencyMs = 20): Promise<S3Results> {
  const s3 = await startS3Behind(ctx.cleanup, latencyMs)
  const work = fresh(ctx, 'clients')
  await mkdir(work)
  const filler = await nixcasOn(ctx, s3.direct)
  const small = ctx.closure.find((path) => path.narSize < 1024 * 1024 && path.storePath !== ctx.doc.storePath) ?? ctx.doc
  for (const path of new Set([ctx.doc, small])) {
    const fill = await curlPut(ctx.cleanup, work, [{ file: join(ctx.cache, path.narUrl), url: `${filler.url}/${path.narUrl}` }], 1)
    if (path === ctx.doc) console.log(`  the doc NAR PUT into nixcas on s3rver (no added latency) in ${fill.seconds.toFixed(1)} s`)
    await curlPut(ctx.cleanup, work, [{ file: join(ctx.cache, `${path.hashPart}.narinfo`), url: `${filler.url}/${path.hashPart}.narinfo` }], 1)
  }
  const { narUrl } = await narOf(filler.url, ctx.doc.storePath)
  const smallUrl = (await narOf(filler.url, small.storePath)).narUrl
  await filler.stop()
  const results: S3Results = { seconds: [], warmSeconds: [], requests: [], latencyMs }
  for (let rep = 0; rep < ctx.reps; rep++) {
    for (const warm of [false, true]) {
      const nixcas = await nixcasOn(ctx, s3.viaProxy)
      if (warm) await curlGet(ctx.cleanup, work, [`${nixcas.url}/${smallUrl}`], 1)
      s3.resetRequests()
      const transfer = await curlGet(ctx.cleanup, work, [`${nixcas.url}/${narUrl}`], 1, 20 * 60_000)
      results.requests.push(s3.requests())
      await nixcas.stop()
      if (transfer.bytes !== ctx.doc.narSize) throw new Error(`the doc NAR from S3 was ${transfer.bytes} bytes, not ${ctx.doc.narSize}`)
      ;(warm ? results.warmSeconds : results.seconds).push(transfer.seconds)
    }
  }
  return results
}

export interface TwoVersionsResults {
  narSize: { v1: number; v2: number }
  afterV1: Du
  afterV2: Du
}

/** Bytes nixcas stores for a tree, then for the tree and its edited copy. */
export async function measureTwoVersions(ctx: Context, tree: TwoVersions): Promise<TwoVersionsResults> {
  const data = fresh(ctx, 'store-tree')
  const nixcas = await nixcasOn(ctx, `file://${data}`)
  await nixCopy(ctx, `${nixcas.url}?compression=none`, [tree.v1.storePath])
  const afterV1 = await du(ctx.cleanup, data)
  await nixCopy(ctx, `${nixcas.url}?compression=none`, [tree.v2.storePath])
  const afterV2 = await du(ctx.cleanup, data)
  const narSize = { v1: (await narOf(nixcas.url, tree.v1.storePath)).narSize, v2: (await narOf(nixcas.url, tree.v2.storePath)).narSize }
  await nixcas.stop()
  await rm(data, { recursive: true, force: true })
  return { narSize, afterV1, afterV2 }
}

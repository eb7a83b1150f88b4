/** What every phase of the shootout shares: where things are, and the few commands they all run. */
import { mkdir, readFile, readdir, rm } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { nixEnv } from './lib.ts'
import { runCommand, type Cleanup } from './lib/procs.ts'
import { CACHE_INFO, httpGet, startNixcas, type Nginx, type Server } from './shootout-servers.ts'

/** A store path as nginx's cache holds it. */
export interface CachedPath {
  storePath: string
  hashPart: string
  /** The narinfo's URL field, e.g. nar/<hash>.nar (compression none). */
  narUrl: string
  narSize: number
}

export interface Context {
  cleanup: Cleanup
  /** Temporary root, removed at the end. */
  dir: string
  reps: number
  quick: boolean
  nginx: Nginx
  /** nginx's static root: a `nix copy --to file://…?compression=none` cache of the closure. */
  cache: string
  /** nginx's WebDAV root. */
  dav: string
  closure: CachedPath[]
  doc: CachedPath & { files: number }
}

let serial = 0

/** A fresh name under the temporary root (data dirs, logs, Nix cache dirs). */
export const fresh = (ctx: Pick<Context, 'dir'>, name: string): string => join(ctx.dir, `${name}-${++serial}`)

/** nixcas on a new fs store (or on `store`), its log beside it. */
export function nixcasOn(ctx: Context, store: string): Promise<Server> {
  return startNixcas(ctx.cleanup, store, `${fresh(ctx, 'nixcas')}.log`)
}

/**
 * `nix copy --to <to>` with a Nix cache directory of its own, so Nix never skips an upload
 * because an earlier run told it the path was there, and with no substituter.
 */
export async function nixCopy(ctx: Pick<Context, 'cleanup' | 'dir'>, to: string, paths: string[]): Promise<void> {
  const env = { ...nixEnv, XDG_CACHE_HOME: fresh(ctx, 'xdg'), NIX_CONFIG: `${nixEnv.NIX_CONFIG}\nsubstituters =` }
  await runCommand(ctx.cleanup, 'nix', ['copy', '--to', to, ...paths], { env, timeoutMs: 30 * 60_000 })
}

/** Writes dirty pages out, so a write phase does not pay for the previous one's. */
export async function sync(ctx: Pick<Context, 'cleanup'>): Promise<void> {
  await runCommand(ctx.cleanup, 'sync', [], { timeoutMs: 300_000 })
}

/** Empties nginx's WebDAV root, keeping nix-cache-info. */
export async function clearDav(ctx: Pick<Context, 'dav'>): Promise<void> {
  for (const entry of await readdir(ctx.dav)) if (entry !== 'nix-cache-info') await rm(join(ctx.dav, entry), { recursive: true, force: true })
  await mkdir(ctx.dav, { recursive: true })
  if (!(await readFile(join(ctx.dav, 'nix-cache-info'), 'utf8')).startsWith(CACHE_INFO.slice(0, 10))) throw new Error('nix-cache-info lost')
}

export function parseNarinfo(text: string): Record<string, string> {
  const fields: Record<string, string> = {}
  for (const line of text.split('\n')) {
    const colon = line.indexOf(': ')
    if (colon > 0) fields[line.slice(0, colon)] = line.slice(colon + 2)
  }
  return fields
}

export const hashPart = (storePath: string): string => basename(storePath).slice(0, 32)

/** Reads each path's narinfo from a file:// cache made with compression=none. */
export async function readCachedPaths(cache: string, storePaths: string[]): Promise<CachedPath[]> {
  return Promise.all(
    storePaths.map(async (storePath) => {
      const fields = parseNarinfo(await readFile(join(cache, `${hashPart(storePath)}.narinfo`), 'utf8'))
      const narSize = Number(fields.NarSize)
      if (!fields.URL || !(narSize > 0) || fields.Compression !== 'none') throw new Error(`unexpected narinfo for ${storePath} in ${cache}`)
      return { storePath, hashPart: hashPart(storePath), narUrl: fields.URL, narSize }
    }),
  )
}

/** The NAR URL (relative) and NarSize a server gives for a store path, from its narinfo. */
export async function narOf(server: string, storePath: string): Promise<{ narUrl: string; narSize: number }> {
  const answer = await httpGet(`${server}/${hashPart(storePath)}.narinfo`)
  if (answer.status !== 200) throw new Error(`${server}: narinfo of ${storePath} answered ${answer.status}`)
  const fields = parseNarinfo(answer.body.toString())
  if (!fields.URL || !(Number(fields.NarSize) > 0)) throw new Error(`${server}: narinfo of ${storePath} has no URL or NarSize`)
  return { narUrl: fields.URL, narSize: Number(fields.NarSize) }
}

/** Runs `work` for each of `subjects`, in an order that alternates with `rep`, so neither always goes first. */
export async function inTurn<T extends string>(rep: number, subjects: readonly T[], work: (subject: T) => Promise<void>): Promise<void> {
  for (const subject of rep % 2 === 0 ? subjects : [...subjects].reverse()) await work(subject)
}

export const sum = (values: number[]): number => values.reduce((total, value) => total + value, 0)

import type { Cas } from '../cas/cas.ts'
import { keyId, keys, prefixes } from '../cas/keys.ts'
import { encodeNixbase32 } from '../nix/nixbase32.ts'
import { STORE_PATH_HASH_LENGTH } from '../nix/store-path.ts'
import type { AccessTimes } from './access-log.ts'
import { MinHeap } from './heap.ts'

/**
 * Which paths a collection keeps as roots (their closures are kept by the collector):
 *
 * - retention: paths pushed or downloaded (narinfo or NAR, from the access records) since
 *   `retainedSince`, and paths whose narinfo is younger than the grace cutoff;
 * - then, with `maxSize`, least-recently-used eviction among those until the bytes the kept
 *   paths need fit. Eviction is closure-aware: a path is evicted only when no path still
 *   kept references it, so what stays is always closed under references; the paths a
 *   young or pinned path needs are never evicted. Last use is the later of push and access.
 *
 * Pins are kept by the collector itself and are passed here only to protect their
 * closures from eviction.
 */
export interface RootPolicy {
  /** Pushed or downloaded at or after this time (store clock, ms): retained. */
  retainedSince: number
  /** Narinfos written at or after this (the grace cutoff) are kept whatever the budget. */
  youngSince: number
  /** Bytes the kept paths may need; unset: no eviction. */
  maxSize?: number
  pinned: readonly string[]
  access: AccessTimes
}

export interface RootChoice {
  /** Store path hashes to keep, with their closures. */
  roots: string[]
  /** Store paths that retention kept but the size budget evicted. */
  evicted: string[]
  /** With `maxSize`: the bytes the kept paths need (PathInfos, NAR records, data packs), as the budget counts them. */
  keptBytes?: number
}


/** Retention alone: one listing of `info/`, and one PathInfo read per old path only when NARs were downloaded (to learn its NAR hash). */
async function retainedRoots(cas: Cas, policy: RootPolicy): Promise<string[]> {
  const roots: string[] = []
  for await (const object of cas.store.list(prefixes.pathInfos)) {
    const hash = keyId(object.key)
    if (object.modified >= Math.min(policy.retainedSince, policy.youngSince) || (policy.access.paths.get(hash) ?? -Infinity) >= policy.retainedSince) {
      roots.push(hash)
      continue
    }
    if (policy.access.nars.size === 0) continue
    const info = await cas.getPathInfo(hash).catch(() => undefined)
    if (info && (policy.access.nars.get(encodeNixbase32(info.narHash.digest)) ?? -Infinity) >= policy.retainedSince) roots.push(hash)
  }
  return roots
}

/** One path as the size budget sees it. */
interface Candidate {
  storePath: string
  lastUse: number
  references: string[]
  /** Keys of the data packs its NAR uses. */
  packs: string[]
  /** Its own objects' bytes: PathInfo and NAR record (or, for the old layout, its NAR size). */
  ownBytes: number
  young: boolean
  kept: boolean
  /** Kept paths that reference it. */
  referrers: number
}

/** Keeps the roots and what they reference, transitively (within the paths that exist). */
function closeOver(paths: ReadonlyMap<string, Candidate>, roots: Iterable<string>, visit: (hash: string, path: Candidate) => void): void {
  const queue = [...roots]
  const seen = new Set<string>()
  while (queue.length > 0) {
    const hash = queue.pop() as string
    const path = paths.get(hash)
    if (path === undefined || seen.has(hash)) continue
    seen.add(hash)
    visit(hash, path)
    queue.push(...path.references)
  }
}

/**
 * Retention, then eviction to `maxSize`. Reads every PathInfo and NAR record once and lists
 * `info/`, `nar/` and `data/` for sizes; memory: one Candidate per path (its references and
 * pack keys) and one size per data pack.
 */
async function budgetedRoots(cas: Cas, policy: RootPolicy, maxSize: number): Promise<RootChoice> {
  const sizes = new Map<string, number>()
  for (const prefix of [prefixes.narRecords, prefixes.dataPacks]) for await (const object of cas.store.list(prefix)) sizes.set(object.key, object.size)
  const paths = new Map<string, Candidate>()
  for await (const object of cas.store.list(prefixes.pathInfos)) {
    const hash = keyId(object.key)
    const info = await cas.getPathInfo(hash).catch(() => undefined)
    if (info === undefined) continue
    const record = await cas.getNarRecord(info.narHash).catch(() => undefined)
    const narKey = keys.narRecord(info.narHash)
    const lastUse = Math.max(object.modified, policy.access.lastAccess(hash, encodeNixbase32(info.narHash.digest)) ?? -Infinity)
    paths.set(hash, {
      storePath: info.storePath,
      lastUse,
      references: info.references.map((reference) => reference.slice(0, STORE_PATH_HASH_LENGTH)).filter((reference) => reference !== hash),
      packs: (record?.tree?.packs ?? []).map((pack) => keys.dataPack(pack)),
      ownBytes: object.size + (sizes.get(narKey) ?? 0) + (record?.tree ? 0 : info.narSize),
      young: object.modified >= policy.youngSince,
      kept: false,
      referrers: 0,
    })
  }
  const protectedPaths = new Set<string>()
  closeOver(paths, [...policy.pinned, ...[...paths].filter(([, path]) => path.young).map(([hash]) => hash)], (hash) => protectedPaths.add(hash))
  const retained = [...paths].filter(([, path]) => path.lastUse >= policy.retainedSince || path.young).map(([hash]) => hash)
  const packUsers = new Map<string, number>()
  let keptBytes = 0
  closeOver(paths, [...retained, ...protectedPaths], (_hash, path) => {
    path.kept = true
    keptBytes += path.ownBytes
    for (const pack of path.packs) {
      const users = packUsers.get(pack) ?? 0
      if (users === 0) keptBytes += sizes.get(pack) ?? 0
      packUsers.set(pack, users + 1)
    }
  })
  for (const path of paths.values()) if (path.kept) for (const reference of path.references) if (paths.get(reference)?.kept) (paths.get(reference) as Candidate).referrers++

  const evicted: string[] = []
  const heap = new MinHeap<string>()
  const offer = (hash: string, path: Candidate): void => {
    if (path.kept && path.referrers === 0 && !protectedPaths.has(hash)) heap.push(path.lastUse, hash)
  }
  for (const [hash, path] of paths) offer(hash, path)
  while (keptBytes > maxSize && heap.size > 0) {
    const hash = heap.pop() as string
    const path = paths.get(hash) as Candidate
    path.kept = false
    evicted.push(path.storePath)
    keptBytes -= path.ownBytes
    for (const pack of path.packs) {
      const users = (packUsers.get(pack) ?? 1) - 1
      packUsers.set(pack, users)
      if (users === 0) keptBytes -= sizes.get(pack) ?? 0
    }
    for (const reference of path.references) {
      const referenced = paths.get(reference)
      if (!referenced?.kept) continue
      referenced.referrers--
      offer(reference, referenced)
    }
  }
  return { roots: [...paths].filter(([, path]) => path.kept).map(([hash]) => hash), evicted, keptBytes }
}

export async function chooseRoots(cas: Cas, policy: RootPolicy): Promise<RootChoice> {
  if (policy.maxSize === undefined) return { roots: await retainedRoots(cas, policy), evicted: [] }
  return budgetedRoots(cas, policy, policy.maxSize)
}

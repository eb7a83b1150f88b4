import { randomBytes } from 'node:crypto'
import type { Cas } from '../cas/cas.ts'
import { decodeOrSkip, newSegmentName } from '../cas/dedup-index.ts'
import { keyId, keys, prefixes } from '../cas/keys.ts'
import { LEASE_TTL_MS, encodeGcRun, leaseClaims, liveGcRuns, readLeases, renewEvery, type GcPhase, type LeaseView } from '../cas/lease.ts'
import { decodeLogRecord } from '../cache/build-logs.ts'
import { encodeIndexSegment } from '../castore/index-segment.ts'
import { NixcasError, isNixcasError } from '../errors.ts'
import { debugInfoNarUrl, parseDebugInfo } from '../nix/debuginfo.ts'
import type { NixHash } from '../nix/hash.ts'
import { decodeNixbase32 } from '../nix/nixbase32.ts'
import { STORE_PATH_HASH_LENGTH, parseStorePathBase } from '../nix/store-path.ts'
import { CacheStore } from '../stores/cache.ts'
import { FsStore } from '../stores/fs.ts'
import type { ListedObject, ObjectStore } from '../stores/store.ts'
import { compactAccessTimes, readAccessTimes, type AccessTimes } from './access-log.ts'
import { APPROXIMATE_SET_DEFAULTS, type ApproximateSetOptions, type ApproximateSetStats } from './bloom.ts'
import { MarkSet, PackUsage, markNar } from './mark.ts'
import { chooseRoots } from './policy.ts'
import { Pins } from './pins.ts'
import { Sweeper, sweepNear, tallyOf, type Tally } from './sweep.ts'
import { tombstonedNars, writeTombstone } from './tombstones.ts'

export interface GcOptions {
  /** Paths pushed or downloaded within this many ms are kept, with their closures. */
  retain: number
  /** After retention, least recently used paths are evicted until what the kept paths need fits in this many bytes (see policy.ts). */
  maxSize?: number
  /** No object younger than this many ms is deleted. */
  grace: number
  /**
   * How long the NAR of a deleted narinfo stays (ms): as long as replicas and CDNs may
   * still serve that narinfo (see tombstones.ts). Default 0.
   */
  settle?: number
  dryRun?: boolean
  storeDir: string
  /** Every store of the composition: caches' near sides and fs stores' temp files are swept too. */
  instances?: Iterable<ObjectStore>
  /** Run even when another run's record is live (one left by a run that was killed a moment ago). */
  force?: boolean
  /**
   * The approximate sets of the mark phase (bloom.ts): chunk-level keys of the old layout
   * and the chunks counted for the dead-bytes report. Defaults: exact up to 100 000
   * members, then Bloom filters sized for 10 million at a 1 % false-positive rate.
   */
  markSet?: Partial<ApproximateSetOptions>
  /** Told when each phase starts (logs, metrics, tests). */
  onPhase?: (phase: GcPhase | 'sweeping' | 'done') => void | Promise<void>
}

export interface GcReport {
  run: string
  dryRun: boolean
  /** Paths kept (pinned, retained, young, or in the closure of those). */
  keptPaths: number
  /** Store paths whose narinfo went (or would go). */
  deletedPaths: string[]
  /** Of those, paths retention kept but `maxSize` evicted. */
  evictedPaths: string[]
  /** With `maxSize`: the bytes the kept paths need, as the budget counts them. */
  keptBytes?: number
  /** NAR bytes of the kept paths (what Nix would download, uncompressed). */
  keptNarBytes: number
  /** Access records merged, and the compacted records written in their place. */
  accessRecords: { read: number; written: number }
  /** Kept paths' references that are not in the cache (pushed without them, or deleted by hand). */
  missingReferences: string[]
  deleted: Record<string, Tally>
  kept: Record<string, Tally>
  /** Data packs kept that kept NARs use only in part, and the bytes in them no kept NAR uses (repacking is not done yet). */
  partlyDeadPacks: number
  deadPackBytes: number
  rewrittenSegments: number
  liveLeases: number
  /** Copies deleted from the near sides of caches, and fs temp files. */
  near: Tally
  tempFiles: Tally
  /** The mark set's size: exact keys, and chunk-level keys with whether a filter held them (and its bytes). */
  marks: { exact: number; leaves: ApproximateSetStats }
}

/** Temp files are in use for the milliseconds of one write: this floor keeps a write in flight safe even with no grace. */
const TEMP_FLOOR_MS = 60_000

/** Sweep order: what points at objects goes before what it points at, so nothing visible ever points at a deleted object. */
const SWEPT = [prefixes.pins, prefixes.tombstones, prefixes.pathInfos, prefixes.realisations, prefixes.buildTraces, prefixes.uploads, prefixes.debugInfo, prefixes.narRecords, prefixes.indexSegments, prefixes.dataPacks, prefixes.closurePacks, prefixes.directories, prefixes.manifests, prefixes.chunks, prefixes.logNames, prefixes.logs] as const

const narHashOfKey = (key: string): NixHash => ({ algorithm: 'sha256', digest: decodeNixbase32(keyId(key), 32) })
const lastSegment = keyId

/** The time of an object by the store's own clock (one listing of its exact key). */
async function modifiedOf(store: ObjectStore, key: string): Promise<number> {
  for await (const object of store.list(key)) if (object.key === key) return object.modified
  throw new NixcasError('INTERNAL', `${key} was written but does not list`)
}

/**
 * One garbage collection run: marks what kept paths need, sweeps the rest. The protocol
 * that makes it safe while replicas push is in cas/lease.ts; the policies:
 *
 * - kept paths: pinned, pushed within `retain`, younger than `grace`, claimed by a live
 *   lease, and everything these reference (whole closures, so no narinfo is left with an
 *   incomplete closure);
 * - kept objects: what kept paths need (NAR records, data packs, trees of the old layout,
 *   upload names, build logs of their derivers, realisations and debug info that point at
 *   them, index segments that describe kept packs), anything younger than the cutoff, and
 *   the closure of young NAR records and PathInfos;
 * - everything else under the layout's prefixes goes: leftovers of aborted and refused
 *   uploads, stale upload names, dead leases and run records, fs temp files.
 *
 * A data pack is kept whole while any kept NAR uses it; its unused bytes are reported.
 */
export async function collectGarbage(cas: Cas, options: GcOptions): Promise<GcReport> {
  const store = cas.store
  const dryRun = options.dryRun ?? false
  const run = `${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`
  const others = await liveGcRuns(store)
  if (others.length > 0 && !options.force) {
    throw new NixcasError('CONFLICT', `another garbage collection is running (${others.map((other) => other.run).join(', ')}); one at a time (--force if it died)`)
  }
  let phase: GcPhase = 'marking'
  const writePhase = (): Promise<void> => store.put(keys.gcRun(run), encodeGcRun({ phase, grace: options.grace }))
  let started = Date.now()
  let stopRenewing = (): void => undefined
  if (!dryRun) {
    await writePhase()
    started = await modifiedOf(store, keys.gcRun(run))
    stopRenewing = renewEvery(writePhase)
  }
  try {
    const gc = new Collection(cas, options, dryRun, run, started)
    await options.onPhase?.('marking')
    await gc.markRoots()
    phase = 'deleting'
    if (!dryRun) await writePhase()
    await options.onPhase?.('deleting')
    await gc.markLeasesAndLatecomers()
    await options.onPhase?.('sweeping')
    const report = await gc.sweep()
    await options.onPhase?.('done')
    return report
  } finally {
    stopRenewing()
    if (!dryRun) await store.delete(keys.gcRun(run))
  }
}

/** The state of one run, phase by phase. */
class Collection {
  private readonly store: ObjectStore
  private readonly marks: MarkSet
  private readonly usage: PackUsage
  /** Store path hashes kept; one entry per kept path. */
  private readonly keptPaths = new Set<string>()
  /** Log record keys of kept paths' derivers. */
  private readonly keptLogNames = new Set<string>()
  private readonly missingReferences = new Set<string>()
  private leases: LeaseView[] = []
  private access: AccessTimes | undefined
  private evicted: string[] = []
  private keptBytes: number | undefined
  private keptNarBytes = 0
  private cutoff: number

  constructor(
    private readonly cas: Cas,
    private readonly options: GcOptions,
    private readonly dryRun: boolean,
    private readonly run: string,
    private readonly started: number,
  ) {
    this.store = cas.store
    this.cutoff = started - options.grace
    this.marks = new MarkSet(this.setOptions)
    this.usage = new PackUsage(this.setOptions)
  }

  private get setOptions(): ApproximateSetOptions {
    return { ...APPROXIMATE_SET_DEFAULTS, ...this.options.markSet }
  }

  /** Keeps these paths and their closures, reading each PathInfo once. */
  private async keepClosures(hashes: Iterable<string>, requiredBy?: string): Promise<void> {
    const queue = [...hashes].map((hash) => ({ hash, from: requiredBy }))
    while (queue.length > 0) {
      const { hash, from } = queue.pop() as { hash: string; from: string | undefined }
      if (this.keptPaths.has(hash)) continue
      const info = await this.cas.getPathInfo(hash)
      if (info === undefined) {
        if (from !== undefined) this.missingReferences.add(`${from} → ${hash}`)
        continue
      }
      this.keptPaths.add(hash)
      this.keptNarBytes += info.narSize
      this.marks.add(keys.pathInfo(hash))
      if (!(await markNar(this.cas, this.marks, this.usage, info.narHash))) this.missingReferences.add(`${info.storePath} → its NAR`)
      if (info.deriver !== undefined) this.keptLogNames.add(keys.logName(parseStorePathBase(info.deriver)))
      for (const reference of info.references) queue.push({ hash: reference.slice(0, STORE_PATH_HASH_LENGTH), from: info.storePath })
    }
  }

  /** Phase 1 (marking): pins, retained and young paths, and their closures. */
  async markRoots(): Promise<void> {
    const pinned: string[] = []
    for await (const path of new Pins(this.store, this.options.storeDir).pinnedPaths()) pinned.push(path.hash)
    await this.keepClosures(pinned)
    this.access = await readAccessTimes(this.store)
    const choice = await chooseRoots(this.cas, { retainedSince: this.started - this.options.retain, youngSince: this.cutoff, maxSize: this.options.maxSize, pinned, access: this.access })
    this.evicted = choice.evicted
    this.keptBytes = choice.keptBytes
    await this.keepClosures(choice.roots)
    for await (const narHash of tombstonedNars(this.cas, this.started - (this.options.settle ?? 0))) await this.markNarOf(narHash)
  }

  private async markNarOf(key: string): Promise<void> {
    try {
      await markNar(this.cas, this.marks, this.usage, narHashOfKey(key))
    } catch (error) {
      // A malformed name in a lease or tombstone protects nothing.
      if (!isNixcasError(error, 'BAD_BASE32')) throw error
    }
  }

  private async keepListed(prefix: string, since: number, keep: (object: ListedObject) => Promise<void>): Promise<void> {
    for await (const object of this.store.list(prefix)) if (object.modified >= since) await keep(object)
  }

  /**
   * Phase 2 (deleting, so writers no longer rely on old objects): what live leases claim,
   * then a second look at PathInfos and NAR records written since the first, each kept
   * with what it needs. The cutoff moves back to the oldest live lease's start, so what
   * writers in flight stored stays too.
   */
  async markLeasesAndLatecomers(): Promise<void> {
    this.leases = await readLeases(this.store)
    for (const lease of this.leases.filter((lease) => this.leaseLives(lease))) {
      this.cutoff = Math.min(this.cutoff, lease.start - this.options.grace)
      for (const key of await leaseClaims(this.store, lease)) {
        if (key.startsWith(prefixes.pathInfos)) await this.keepClosures([lastSegment(key)])
        else if (key.startsWith(prefixes.narRecords)) await this.markNarOf(key)
        else this.marks.add(key)
      }
    }
    await this.keepListed(prefixes.pathInfos, this.cutoff, (object) => this.keepClosures([lastSegment(object.key)]))
    await this.keepListed(prefixes.narRecords, this.cutoff, (object) => this.markNarOf(object.key))
  }

  /** Renewed within its TTL, and not closed before this run started (what its writer published is listed by this run). */
  private leaseLives(lease: LeaseView): boolean {
    return lease.newest >= this.started - LEASE_TTL_MS && !(lease.closed !== undefined && lease.closed < this.started)
  }

  /** Reads a small record for a keep decision; one that is gone or unreadable is not kept. */
  private async text(key: string): Promise<string | undefined> {
    return (await this.store.get(key))?.toString('utf8')
  }

  private async outPathKept(object: ListedObject): Promise<boolean> {
    const text = await this.text(object.key)
    try {
      const outPath = (JSON.parse(text ?? 'null') as { outPath?: unknown } | null)?.outPath
      return typeof outPath === 'string' && this.keptPaths.has(outPath.slice(0, STORE_PATH_HASH_LENGTH))
    } catch {
      return false
    }
  }

  /** An upload name stays while its NAR does; a malformed one goes. */
  private async uploadKept(object: ListedObject): Promise<boolean> {
    const text = await this.text(object.key)
    try {
      // The record is the NAR hash, then optionally the compression of the uploaded bytes (see Cas.getUpload).
      return text !== undefined && this.marks.has(keys.narRecord(narHashOfKey(text.split(' ')[0] ?? '')))
    } catch (error) {
      if (isNixcasError(error)) return false
      throw error
    }
  }

  /** Phase 3: sweeps prefix by prefix, pointers before what they point at. */
  async sweep(): Promise<GcReport> {
    const instances = [...(this.options.instances ?? [])]
    const nears = instances.filter((store): store is CacheStore => store instanceof CacheStore).map((cache) => cache.nearStore)
    const sweeper = new Sweeper(this.store, this.cutoff, this.dryRun, nears.length > 0 ? new MarkSet(this.setOptions) : undefined)
    const deletedPaths: string[] = []
    const keptUploads = new Set<string>()
    let rewrittenSegments = 0
    let partlyDeadPacks = 0
    let deadPackBytes = 0

    await sweeper.sweep(keys.pins, () => true)
    await sweeper.sweep(prefixes.pathInfos, (object) => this.marks.has(object.key), async (batch) => {
      const narHashes: NixHash[] = []
      for (const key of batch) {
        const info = await this.cas.getPathInfo(lastSegment(key)).catch(() => undefined)
        deletedPaths.push(info?.storePath ?? lastSegment(key))
        if (info) narHashes.push(info.narHash)
      }
      if (!this.dryRun && (this.options.settle ?? 0) > 0) await writeTombstone(this.store, narHashes)
    })
    await sweeper.sweep(prefixes.realisations, (object) => this.outPathKept(object))
    await sweeper.sweep(prefixes.buildTraces, (object) => this.outPathKept(object))
    await sweeper.sweep(prefixes.uploads, async (object) => {
      const kept = await this.uploadKept(object)
      if (kept) keptUploads.add(lastSegment(object.key))
      return kept
    })
    await sweeper.sweep(prefixes.debugInfo, async (object) => {
      try {
        const url = debugInfoNarUrl(parseDebugInfo((await this.text(object.key)) ?? ''))
        const file = lastSegment(url)
        return /^[0-9a-z]{52}\.nar$/.test(file) ? this.marks.has(keys.narRecord(narHashOfKey(file.slice(0, 52)))) : keptUploads.has(file)
      } catch {
        return false
      }
    })
    await sweeper.sweep(prefixes.narRecords, (object) => this.marks.has(object.key))
    await sweeper.sweep(keys.indexSegments, async (object) => {
      const bytes = await this.store.get(object.key)
      const chunks = bytes && decodeOrSkip(bytes)
      // Gone, or cut short by a crash (segments are not synced): nothing in it to keep.
      if (chunks === undefined) return false
      const live = chunks.filter((chunk) => this.marks.has(keys.dataPack(chunk.pack)))
      if (live.length === chunks.length) return true
      // Partly dead: the live entries go into a new segment (young, so kept), the old one goes.
      if (live.length > 0 && !this.dryRun) await this.cas.putIndexSegment(newSegmentName(), encodeIndexSegment(live))
      if (live.length > 0) rewrittenSegments++
      return false
    })
    await sweeper.sweep(prefixes.dataPacks, (object) => {
      if (!this.marks.has(object.key)) return false
      const dead = object.size - this.usage.liveBytes(lastSegment(object.key))
      // The trailer (36 bytes a chunk, 12 more) is never "used": only more than it counts as dead.
      if (dead > object.size / 64 + 4096) {
        partlyDeadPacks++
        deadPackBytes += dead
      }
      return true
    })
    for (const prefix of [prefixes.closurePacks, prefixes.directories, prefixes.manifests, prefixes.chunks] as const) await sweeper.sweep(prefix, (object) => this.marks.has(object.key))
    const retainedSince = this.started - this.options.retain
    await sweeper.sweep(prefixes.logNames, async (object) => {
      if (!this.keptLogNames.has(object.key) && object.modified < retainedSince) return false
      const bytes = await this.store.get(object.key)
      if (bytes === undefined) return false
      for (const part of decodeLogRecord(bytes, object.key).parts) this.marks.add(keys.log(part.digest))
      return true
    })
    await sweeper.sweep(prefixes.logs, (object) => this.marks.has(object.key))
    await this.sweepLeasesAndRuns(sweeper)
    const access = this.access
    const accessWritten = access === undefined || this.dryRun ? 0 : await compactAccessTimes(this.store, access, { path: (hash) => this.keptPaths.has(hash), nar: (hash) => this.marks.has(keys.narRecord(narHashOfKey(hash))) })

    const near = tallyOf()
    for (const store of nears) {
      const swept = await sweepNear(store, SWEPT, sweeper.keptKeys ?? new MarkSet(this.setOptions), this.cutoff, this.dryRun)
      near.objects += swept.objects
      near.bytes += swept.bytes
    }
    const tempFiles = tallyOf()
    for (const fs of instances.filter((store): store is FsStore => store instanceof FsStore)) {
      const swept = await fs.sweepTemp(Math.min(Date.now() - this.options.grace, Date.now() - TEMP_FLOOR_MS), this.dryRun)
      tempFiles.objects += swept.objects
      tempFiles.bytes += swept.bytes
      if (!this.dryRun) await fs.pruneEmptyDirectories(prefixes.leases)
    }
    return {
      run: this.run,
      dryRun: this.dryRun,
      keptPaths: this.keptPaths.size,
      deletedPaths,
      evictedPaths: this.evicted,
      ...(this.keptBytes === undefined ? {} : { keptBytes: this.keptBytes }),
      keptNarBytes: this.keptNarBytes,
      accessRecords: { read: access?.records.length ?? 0, written: accessWritten },
      missingReferences: [...this.missingReferences],
      deleted: Object.fromEntries(sweeper.deleted),
      kept: Object.fromEntries(sweeper.kept),
      partlyDeadPacks,
      deadPackBytes,
      rewrittenSegments,
      liveLeases: this.leases.filter((lease) => this.leaseLives(lease)).length,
      near,
      tempFiles,
      marks: this.marks.stats,
    }
  }

  /** Leases not renewed within their TTL (their writer died) or closed before this run, and run records of runs that died. */
  private async sweepLeasesAndRuns(sweeper: Sweeper): Promise<void> {
    const dead = this.leases.filter((lease) => !this.leaseLives(lease)).flatMap((lease) => lease.keys)
    for (let start = 0; start < dead.length; start += 1000) await sweeper.flush(dead.slice(start, start + 1000))
    const ours = keys.gcRun(this.run)
    await sweeper.sweep(keys.gcRuns, (object) => object.key === ours || object.modified >= this.started - LEASE_TTL_MS)
    await sweeper.sweep(keys.tombstones, (object) => object.modified >= this.started - (this.options.settle ?? 0))
  }
}

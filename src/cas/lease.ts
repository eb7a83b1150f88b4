import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Digest } from '../castore/digest.ts'
import { NixcasError } from '../errors.ts'
import type { NixHash } from '../nix/hash.ts'
import type { ObjectStore } from '../stores/store.ts'
import { keys } from './keys.ts'

/**
 * The protocol that lets garbage collection run while any replica pushes (replicas share
 * only the store). Its two halves:
 *
 * A writer holds a **lease** (`leases/<id>/…`) for the time of one write (a NAR upload, a
 * narinfo PUT). The lease's start record is written before anything else, so every object
 * the writer stores is at least as young as it. Before relying on an object that already
 * exists (a data pack it dedups against, the NAR record a narinfo names, the paths it
 * references) the writer **claims** it (writes its key into the lease), then reads the GC
 * run records: while a run is `deleting`, old objects may vanish, so the writer does not
 * rely on them (an ingest stores the chunk itself; a narinfo waits for the run to end);
 * otherwise it checks the object exists and relies on it. At the end the writer deletes
 * its lease, unless a run is deleting: that run may not have read it yet, so the lease stays,
 * marked closed; only runs that start after the mark (one run at a time) ignore it.
 *
 * A GC run writes its record (`gc/runs/<run>`, phase `marking`) before it reads any root,
 * marks, switches the record to `deleting`, then reads every live lease (marking what they
 * claim), lists `info/` and `nar/` again for objects written meanwhile, and only then
 * deletes what is unmarked and older than its cutoff (its start by the store's clock, or
 * the start of the oldest live lease if earlier, minus the grace period).
 *
 * Why that is enough: a writer that saw no deleting run after claiming is seen by every run
 * that deletes later, either through its lease (still there when the run reads leases) or
 * through what it published (written before the lease went, so listed by the run's second
 * look). A writer that saw a deleting run relies on nothing old; one that looks after a
 * run ended finds its deletions done and checks existence after them. Stores must list and
 * read their own writes consistently (S3 and GCS do, since 2020).
 */

/**
 * How leases are written: a crash of the machine ends every write its leases protect, so
 * they need not survive one (on a local disk: no fsync per lease).
 */
const COORDINATION = { durable: false } as const

/** A lease or run record not renewed for this long was left by a process that died. */
export const LEASE_TTL_MS = 15 * 60_000
/** How often a living lease or run renews its record. */
const RENEW_MS = LEASE_TTL_MS / 5
/** How long a narinfo PUT waits for a deleting run to end before it answers GC_IN_PROGRESS, unless configured (`gc.narinfoWait`). */
export const GC_WAIT_MS = 30_000
/** How often a writer waiting for a deleting run looks again. */
const WAIT_STEP_MS = 200

export type GcPhase = 'marking' | 'deleting'

export interface GcRunRecord {
  phase: GcPhase
  /** The run's grace period, ms. */
  grace: number
}

export function encodeGcRun(record: GcRunRecord): Buffer {
  return Buffer.from(JSON.stringify({ v: 1, phase: record.phase, grace: record.grace }))
}

export function decodeGcRun(bytes: Uint8Array): GcRunRecord | undefined {
  try {
    const value = JSON.parse(Buffer.from(bytes).toString('utf8')) as Partial<GcRunRecord> & { v?: number }
    if (value.v === 1 && (value.phase === 'marking' || value.phase === 'deleting') && typeof value.grace === 'number') return { phase: value.phase, grace: value.grace }
  } catch {
    // A record that is not ours reads as absent.
  }
  return undefined
}

/** The run records in the store, with their phase; records not renewed within the TTL are dead and left out. */
export async function liveGcRuns(store: ObjectStore, now = Date.now()): Promise<{ run: string; phase: GcPhase; modified: number }[]> {
  const runs: { run: string; phase: GcPhase; modified: number }[] = []
  for await (const object of store.list(keys.gcRuns)) {
    if (object.modified < now - LEASE_TTL_MS) continue
    const bytes = await store.get(object.key)
    const record = bytes && decodeGcRun(bytes)
    if (record) runs.push({ run: object.key.slice(keys.gcRuns.length), phase: record.phase, modified: object.modified })
  }
  return runs
}

export async function gcDeleting(store: ObjectStore): Promise<boolean> {
  return (await liveGcRuns(store)).some((run) => run.phase === 'deleting')
}

/** Renews a record every RENEW_MS until stopped, without keeping the process alive. */
export function renewEvery(renew: () => Promise<void>): () => void {
  const timer = setInterval(() => void renew().catch(() => undefined), RENEW_MS)
  timer.unref()
  return () => clearInterval(timer)
}

/** A writer's lease: see the protocol above. */
export class Lease {
  private claims = 0
  private readonly written: string[]
  private readonly stopRenewing: () => void

  private constructor(
    private readonly store: ObjectStore,
    readonly id: string,
  ) {
    this.written = [keys.leaseStart(id), keys.leaseRenewal(id)]
    this.stopRenewing = renewEvery(() => this.store.put(keys.leaseRenewal(this.id), Buffer.from('lease'), COORDINATION))
  }

  static async open(store: ObjectStore): Promise<Lease> {
    const id = `${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`
    await store.put(keys.leaseStart(id), Buffer.from('lease'), COORDINATION)
    return new Lease(store, id)
  }

  /** Records that this writer relies on these objects (keys), before it checks they exist. */
  async claim(objectKeys: readonly string[]): Promise<void> {
    if (objectKeys.length === 0) return
    const key = keys.leaseClaim(this.id, this.claims++)
    this.written.push(key)
    await this.store.put(key, Buffer.from(objectKeys.join('\n')), COORDINATION)
  }

  /**
   * Claims an existing object and says whether it may be relied on now: no run is deleting
   * and the object is there. An ingest asks this of each data pack it would dedup against.
   */
  async mayUse(objectKey: string, signal?: AbortSignal): Promise<boolean> {
    await this.claim([objectKey])
    if (await gcDeleting(this.store)) return false
    return (await this.store.head(objectKey, { signal })) !== undefined
  }

  /**
   * Claims objects, then waits (up to `maxWait` ms) while a run is deleting; the caller
   * checks they exist afterwards. Returns whether it waited, i.e. whether a run may have
   * deleted some of them after the claim. Waiting longer is GC_IN_PROGRESS, which clients retry.
   */
  async claimAndWait(objectKeys: readonly string[], maxWait: number, signal?: AbortSignal): Promise<boolean> {
    await this.claim(objectKeys)
    const until = Date.now() + maxWait
    let waited = false
    while (await gcDeleting(this.store)) {
      if (Date.now() >= until) throw new NixcasError('GC_IN_PROGRESS', 'garbage collection is deleting objects this write relies on; retry shortly')
      waited = true
      await sleep(WAIT_STEP_MS, undefined, { signal })
    }
    return waited
  }

  /** `mayUse` for a data pack an ingest would dedup against. */
  mayUsePack(pack: Digest, signal?: AbortSignal): Promise<boolean> {
    return this.mayUse(keys.dataPack(pack), signal)
  }

  /** Claims what a narinfo relies on (its NAR record and the paths it references) and waits out a deleting run. */
  claimForNarInfo(narHash: NixHash, referenceHashes: readonly string[], options: { maxWait?: number; signal?: AbortSignal } = {}): Promise<boolean> {
    return this.claimAndWait([keys.narRecord(narHash), ...referenceHashes.map((hash) => keys.pathInfo(hash))], options.maxWait ?? GC_WAIT_MS, options.signal)
  }

  /** Ends the lease: deleted, unless a run is deleting (it may not have read the lease yet): then marked closed, for the next run to delete. */
  async close(): Promise<void> {
    this.stopRenewing()
    if (await gcDeleting(this.store)) await this.store.put(keys.leaseClosed(this.id), Buffer.from('closed'), COORDINATION)
    else await this.store.deleteMany(this.written)
  }
}

/** A lease as garbage collection reads it: when it started, whether it lives, what it claims. */
export interface LeaseView {
  id: string
  start: number
  newest: number
  /** When it was marked closed, if it was. */
  closed?: number
  keys: string[]
  claimKeys: string[]
}

/** Every lease in the store, read claim by claim: one listing, one read per claim. */
export async function readLeases(store: ObjectStore): Promise<LeaseView[]> {
  const leases = new Map<string, LeaseView>()
  for await (const object of store.list(keys.leases)) {
    const id = object.key.slice(keys.leases.length, object.key.indexOf('/', keys.leases.length))
    let lease = leases.get(id)
    if (!lease) leases.set(id, (lease = { id, start: object.modified, newest: object.modified, keys: [], claimKeys: [] }))
    lease.keys.push(object.key)
    // Only the start record is never rewritten and everything else comes after it: the oldest time is the start.
    if (object.key === keys.leaseClosed(id)) lease.closed = object.modified
    else if (object.key !== keys.leaseStart(id) && object.key !== keys.leaseRenewal(id)) lease.claimKeys.push(object.key)
    lease.start = Math.min(lease.start, object.modified)
    lease.newest = Math.max(lease.newest, object.modified)
  }
  return [...leases.values()]
}

/** What a lease claims (each claim record is a list of keys, one a line). */
export async function leaseClaims(store: ObjectStore, lease: LeaseView): Promise<string[]> {
  const claimed: string[] = []
  for (const key of lease.claimKeys) {
    const bytes = await store.get(key)
    if (bytes && bytes.length > 0) for (const line of bytes.toString('utf8').split('\n')) claimed.push(line)
  }
  return claimed
}

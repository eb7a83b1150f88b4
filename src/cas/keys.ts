import { digestHex, type Digest } from '../castore/digest.ts'
import type { NixHash } from '../nix/hash.ts'
import type { BuildTraceKey, DrvOutputId } from '../nix/drv-output.ts'
import { encodeNixbase32 } from '../nix/nixbase32.ts'
import { storePathBase, type StorePath } from '../nix/store-path.ts'

const sharded = (kind: string, id: string): string => `${kind}/${id.slice(0, 2)}/${id}`

/**
 * A validated Nix name (store path names and output names may hold `+`, `?`, `=` and a
 * leading `.`, which keys do not) as key text: every character outside `[A-Za-z0-9-]`
 * becomes `_` and two hex digits, so the mapping is one to one and `.` never leads.
 */
export const keyText = (name: string): string => name.replace(/[^A-Za-z0-9-]/g, (char) => `_${char.charCodeAt(0).toString(16).padStart(2, '0')}`)

/**
 * The key layout: the one place object keys are made. Keys derive only from digests,
 * hashes and names that were validated before they get here, sharded two characters deep
 * so that no directory or listing page grows without bound.
 */
export const keys = {
  chunk: (digest: Digest): string => sharded('chunks', digestHex(digest)),
  manifest: (blob: Digest): string => sharded('blobs', digestHex(blob)),
  directory: (digest: Digest): string => sharded('dirs', digestHex(digest)),
  closurePack: (root: Digest): string => sharded('packs', digestHex(root)),
  /** A data pack, named by the digest of its bytes. */
  dataPack: (digest: Digest): string => sharded('data', digestHex(digest)),
  /** Which chunks one ingest added and where: what dedup learns from, on any replica. */
  indexSegment: (name: string): string => `index/${name}`,
  indexSegments: 'index/',
  pathInfo: (storePathHash: string): string => sharded('info', storePathHash),
  /** The NAR record (or, in stores from before data packs, the NAR index entry). */
  narRecord: (narHash: NixHash): string => sharded('nar', encodeNixbase32(narHash.digest)),
  /** An uploaded NAR file name (`<stem>.nar[.xz|…]`, validated by the caller) → the NAR it became. */
  upload: (stem: string, fileName: string): string => `uploads/${stem.slice(0, 2)}/${fileName}`,
  /** A part of a build log's stored (compressed) bytes, by the BLAKE3 digest of those bytes. */
  log: (digest: Digest): string => sharded('logs', digestHex(digest)),
  /** `log/<drv basename>` → which log it is (a small record), by the derivation's store path. */
  logName: (drv: StorePath): string => `log-names/${drv.hash.slice(0, 2)}/${keyText(storePathBase(drv))}`,
  /** `realisations/<drv hash>!<output>.doi` (Nix ≤ 2.34), as served. */
  realisation: (id: DrvOutputId): string => `realisations/${id.drvHash.slice(0, 2)}/${id.drvHash}/${keyText(id.outputName)}`,
  /** `build-trace-v2/<drv>/<output>.doi` (Nix ≥ 2.35), as served. */
  buildTrace: (key: BuildTraceKey): string => `build-traces/${key.drvPath.slice(0, 2)}/${keyText(key.drvPath)}/${keyText(key.outputName)}`,
  /** `debuginfo/<build-id>.debug`, as served. */
  debugInfo: (buildId: string): string => sharded('debuginfo', buildId),
  /** A named pin (`nixcas pin add`): store paths whose closures garbage collection keeps. */
  pin: (name: string): string => `pins/${keyText(name)}`,
  pins: 'pins/',
  /** A writer's lease (see cas/lease.ts): its start record, and claim `n` (objects it relies on). */
  leaseStart: (id: string): string => `leases/${id}/start`,
  leaseClaim: (id: string, n: number): string => `leases/${id}/claim-${n}`,
  /** Rewritten while the lease lives (the start record never is: its time is the lease's start). */
  leaseRenewal: (id: string): string => `leases/${id}/renewed`,
  /** Written when a lease ends while a run is deleting: runs that start after it need not respect the lease. */
  leaseClosed: (id: string): string => `leases/${id}/closed`,
  leases: 'leases/',
  /** A garbage collection run's record: its phase, so writers know when old objects may vanish. */
  gcRun: (run: string): string => `gc/runs/${run}`,
  gcRuns: 'gc/runs/',
  /**
   * A replica's bid for the scheduled-GC lock (lifecycle/gc-lock.ts): never rewritten, so its
   * time orders the bids; the renewal beside it says the holder lives.
   */
  gcLock: (id: string): string => `gc/locks/${id}`,
  gcLockRenewal: (id: string): string => `gc/locks/${id}.renewed`,
  gcLocks: 'gc/locks/',
  /** The summary of the last garbage collection that finished (any replica, or the CLI). */
  gcLast: 'gc/last',
  /** The store's figures (paths, bytes, objects by kind) from the last gc or stats run, for /metrics. */
  statsRecord: 'stats/last',
  /** The NAR hashes of narinfos deleted in one batch, kept while clients and CDNs may still hold those narinfos. */
  tombstone: (name: string): string => `gc/tombstones/${name}`,
  tombstones: 'gc/tombstones/',
  /**
   * A batch of store paths and NARs one replica served (lifecycle/access-log.ts): a flush
   * (`<time>-<replica>`) or a compaction of older ones written by garbage collection.
   */
  accessRecord: (name: string): string => `access/${name}`,
  accessRecords: 'access/',
  /** Probed by /health: never written, so the answer is always "absent" from a store that works. */
  healthProbe: 'health/probe',
} as const

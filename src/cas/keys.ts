import { digestHex, type Digest } from '../castore/digest.ts'
import type { NixHash } from '../nix/hash.ts'
import type { BuildTraceKey, DrvOutputId } from '../nix/drv-output.ts'
import { encodeNixbase32 } from '../nix/nixbase32.ts'
import { storePathBase, type StorePath } from '../nix/store-path.ts'

/**
 * The top-level folder of each kind of object: what keys start with, and what listings
 * (garbage collection, verify, stats) walk. Keys are built below from these names only.
 */
export const prefixes = {
  chunks: 'chunks/',
  manifests: 'blobs/',
  directories: 'dirs/',
  closurePacks: 'packs/',
  dataPacks: 'data/',
  indexSegments: 'index/',
  pathInfos: 'info/',
  narRecords: 'nar/',
  uploads: 'uploads/',
  logs: 'logs/',
  logNames: 'log-names/',
  realisations: 'realisations/',
  buildTraces: 'build-traces/',
  debugInfo: 'debuginfo/',
  pins: 'pins/',
  leases: 'leases/',
  gcRuns: 'gc/runs/',
  tombstones: 'gc/tombstones/',
  gcLocks: 'gc/locks/',
  accessRecords: 'access/',
} as const

/** The last segment of a key: the digest, hash or name it was made from (see `keys`). */
export const keyId = (key: string): string => key.slice(key.lastIndexOf('/') + 1)

const sharded = (prefix: string, id: string): string => `${prefix}${id.slice(0, 2)}/${id}`

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
  chunk: (digest: Digest): string => sharded(prefixes.chunks, digestHex(digest)),
  manifest: (blob: Digest): string => sharded(prefixes.manifests, digestHex(blob)),
  directory: (digest: Digest): string => sharded(prefixes.directories, digestHex(digest)),
  closurePack: (root: Digest): string => sharded(prefixes.closurePacks, digestHex(root)),
  /** A data pack, named by the digest of its bytes. */
  dataPack: (digest: Digest): string => sharded(prefixes.dataPacks, digestHex(digest)),
  /** Which chunks one ingest added and where: what dedup learns from, on any replica. */
  indexSegment: (name: string): string => `${prefixes.indexSegments}${name}`,
  indexSegments: prefixes.indexSegments,
  pathInfo: (storePathHash: string): string => sharded(prefixes.pathInfos, storePathHash),
  /** The NAR record (or, in stores from before data packs, the NAR index entry). */
  narRecord: (narHash: NixHash): string => sharded(prefixes.narRecords, encodeNixbase32(narHash.digest)),
  /** An uploaded NAR file name (`<stem>.nar[.xz|…]`, validated by the caller) → the NAR it became. */
  upload: (stem: string, fileName: string): string => `${prefixes.uploads}${stem.slice(0, 2)}/${fileName}`,
  /** A part of a build log's stored (compressed) bytes, by the BLAKE3 digest of those bytes. */
  log: (digest: Digest): string => sharded(prefixes.logs, digestHex(digest)),
  /** `log/<drv basename>` → which log it is (a small record), by the derivation's store path. */
  logName: (drv: StorePath): string => `${prefixes.logNames}${drv.hash.slice(0, 2)}/${keyText(storePathBase(drv))}`,
  /** `realisations/<drv hash>!<output>.doi` (Nix ≤ 2.34), as served. */
  realisation: (id: DrvOutputId): string => `${prefixes.realisations}${id.drvHash.slice(0, 2)}/${id.drvHash}/${keyText(id.outputName)}`,
  /** `build-trace-v2/<drv>/<output>.doi` (Nix ≥ 2.35), as served. */
  buildTrace: (key: BuildTraceKey): string => `${prefixes.buildTraces}${key.drvPath.slice(0, 2)}/${keyText(key.drvPath)}/${keyText(key.outputName)}`,
  /** `debuginfo/<build-id>.debug`, as served. */
  debugInfo: (buildId: string): string => sharded(prefixes.debugInfo, buildId),
  /** A named pin (`nixcas pin add`): store paths whose closures garbage collection keeps. */
  pin: (name: string): string => `${prefixes.pins}${keyText(name)}`,
  pins: prefixes.pins,
  /** A writer's lease (see cas/lease.ts): its start record, and claim `n` (objects it relies on). */
  leaseStart: (id: string): string => `${prefixes.leases}${id}/start`,
  leaseClaim: (id: string, n: number): string => `${prefixes.leases}${id}/claim-${n}`,
  /** Rewritten while the lease lives (the start record never is: its time is the lease's start). */
  leaseRenewal: (id: string): string => `${prefixes.leases}${id}/renewed`,
  /** Written when a lease ends while a run is deleting: runs that start after it need not respect the lease. */
  leaseClosed: (id: string): string => `${prefixes.leases}${id}/closed`,
  leases: prefixes.leases,
  /** A garbage collection run's record: its phase, so writers know when old objects may vanish. */
  gcRun: (run: string): string => `${prefixes.gcRuns}${run}`,
  gcRuns: prefixes.gcRuns,
  /**
   * A replica's bid for the scheduled-GC lock (lifecycle/gc-lock.ts): never rewritten, so its
   * time orders the bids; the renewal beside it says the holder lives.
   */
  gcLock: (id: string): string => `${prefixes.gcLocks}${id}`,
  gcLockRenewal: (id: string): string => `${prefixes.gcLocks}${id}.renewed`,
  gcLocks: prefixes.gcLocks,
  /** The summary of the last garbage collection that finished (any replica, or the CLI). */
  gcLast: 'gc/last',
  /** The store's figures (paths, bytes, objects by kind) from the last gc or stats run, for /metrics. */
  statsRecord: 'stats/last',
  /** The NAR hashes of narinfos deleted in one batch, kept while clients and CDNs may still hold those narinfos. */
  tombstone: (name: string): string => `${prefixes.tombstones}${name}`,
  tombstones: prefixes.tombstones,
  /**
   * A batch of store paths and NARs one replica served (lifecycle/access-log.ts): a flush
   * (`<time>-<replica>`) or a compaction of older ones written by garbage collection.
   */
  accessRecord: (name: string): string => `${prefixes.accessRecords}${name}`,
  accessRecords: prefixes.accessRecords,
  /** Probed by /health: never written, so the answer is always "absent" from a store that works. */
  healthProbe: 'health/probe',
} as const

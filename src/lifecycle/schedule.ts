import type { Logger } from 'pino'
import type { Cas } from '../cas/cas.ts'
import { LEASE_TTL_MS } from '../cas/lease.ts'
import { isNixcasError } from '../errors.ts'
import type { Metrics } from '../metrics.ts'
import type { ObjectStore } from '../stores/store.ts'
import { collectGarbage } from './gc.ts'
import { GcLock } from './gc-lock.ts'
import { readGcSummary, readStats, recordGc, type GcSummary, type StatsRecord } from './records.ts'

export interface ScheduleOptions {
  /** ms between collections across all replicas; 0: no scheduled collection (the recorded figures are still read). */
  interval: number
  retain: number
  maxSize?: number
  grace: number
  settle: number
  storeDir: string
  instances: Iterable<ObjectStore>
  logger: Logger
  /** How often a replica looks whether a collection is due and rereads the records (ms). */
  checkEvery?: number
  /** See GcLock. */
  lockTtl?: number
  lockSettle?: number
  now?: () => number
}

export type TickOutcome = 'ran' | 'not-due' | 'busy' | 'off' | 'failed'

/** Longest pause between two looks; a collection starts at most this late. */
const MAX_CHECK_MS = 5 * 60_000
const LOCK_SETTLE_MS = 2_000

/**
 * Scheduled garbage collection in the server. Every replica looks every `checkEvery`;
 * when the last collection (`gc/last`, by any replica or the CLI) finished more than
 * `interval` ago, it bids for the lock (gc-lock.ts); the winner collects and records the
 * summary and figures, which every replica's /metrics shows.
 */
export class GcScheduler {
  running = false
  private timer: NodeJS.Timeout | undefined
  private summary: (GcSummary & { modified: number }) | undefined
  private stats: (StatsRecord & { modified: number }) | undefined
  private readonly outcomes = new Map<TickOutcome, number>()
  private readonly now: () => number

  constructor(
    private readonly cas: Cas,
    private readonly options: ScheduleOptions,
  ) {
    this.now = options.now ?? Date.now
  }

  get lastSummary(): GcSummary | undefined {
    return this.summary
  }

  get lastStats(): StatsRecord | undefined {
    return this.stats
  }

  /** Rereads the records other replicas (or the CLI) may have written. */
  async refresh(): Promise<void> {
    this.summary = await readGcSummary(this.cas.store)
    this.stats = await readStats(this.cas.store)
  }

  private due(): boolean {
    return this.summary === undefined || this.summary.modified < this.now() - this.options.interval
  }

  /** One look: collects when due and this replica wins the lock. */
  async tick(): Promise<TickOutcome> {
    const outcome = await this.look()
    this.outcomes.set(outcome, (this.outcomes.get(outcome) ?? 0) + 1)
    return outcome
  }

  private async look(): Promise<TickOutcome> {
    const { logger } = this.options
    try {
      await this.refresh()
    } catch (error) {
      logger.warn({ err: error }, 'reading the garbage collection records failed')
      return 'failed'
    }
    if (this.options.interval === 0) return 'off'
    if (this.running) return 'busy'
    if (!this.due()) return 'not-due'
    this.running = true
    let lock: GcLock | undefined
    try {
      lock = await GcLock.acquire(this.cas.store, { ttl: this.options.lockTtl ?? LEASE_TTL_MS, settle: this.options.lockSettle ?? LOCK_SETTLE_MS, now: this.now })
      if (lock === undefined) return 'busy'
      // Another replica may have finished one while this one bid.
      this.summary = await readGcSummary(this.cas.store)
      if (!this.due()) return 'not-due'
      return await this.collect()
    } catch (error) {
      if (isNixcasError(error, 'CONFLICT')) {
        logger.info({ reason: error.message }, 'scheduled garbage collection skipped')
        return 'busy'
      }
      logger.error({ err: error }, 'scheduled garbage collection failed')
      return 'failed'
    } finally {
      this.running = false
      await lock?.release().catch(() => undefined)
    }
  }

  private async collect(): Promise<TickOutcome> {
    const { logger } = this.options
    const started = Date.now()
    logger.info({ retain: this.options.retain, maxSize: this.options.maxSize, grace: this.options.grace }, 'scheduled garbage collection starting')
    const report = await collectGarbage(this.cas, {
      retain: this.options.retain,
      ...(this.options.maxSize === undefined ? {} : { maxSize: this.options.maxSize }),
      grace: this.options.grace,
      settle: this.options.settle,
      storeDir: this.options.storeDir,
      instances: this.options.instances,
      onPhase: (phase) => void logger.info({ phase }, 'garbage collection phase'),
    })
    const finished = Date.now()
    await recordGc(this.cas.store, report, started, finished)
    await this.refresh()
    const summary = this.summary
    logger.info({ run: report.run, ms: finished - started, deletedPaths: summary?.deletedPaths, evictedPaths: summary?.evictedPaths, keptPaths: summary?.keptPaths, deletedObjects: summary?.deletedObjects, deletedBytes: summary?.deletedBytes }, 'scheduled garbage collection finished')
    return 'ran'
  }

  /** Looks every `checkEvery` (from now) until stopped, without keeping the process alive. */
  start(): void {
    const every = this.options.checkEvery ?? Math.min(this.options.interval || MAX_CHECK_MS, MAX_CHECK_MS)
    this.timer = setInterval(() => void this.tick(), every)
    this.timer.unref()
    void this.tick()
  }

  stop(): void {
    clearInterval(this.timer)
  }

  /** The gauges of /metrics: this replica's runs, the last collection and the store's figures (from the records, never a scan). */
  register(metrics: Metrics): void {
    const one = (value: number | undefined): [Record<string, string>, number][] => (value === undefined ? [] : [[{}, value]])
    metrics.gauge('nixcas_gc_running', 'Whether this replica is running a scheduled garbage collection', () => [[{}, this.running ? 1 : 0]])
    metrics.gauge('nixcas_gc_checks', 'Looks at the schedule by this replica, by outcome', () => [...this.outcomes].map(([outcome, count]) => [{ outcome }, count]))
    metrics.gauge('nixcas_gc_last_run_timestamp_seconds', 'When the last garbage collection (any replica or the CLI) finished', () => one(this.summary && this.summary.finished / 1000))
    metrics.gauge('nixcas_gc_last_duration_seconds', 'How long the last garbage collection took', () => one(this.summary && (this.summary.finished - this.summary.started) / 1000))
    metrics.gauge('nixcas_gc_last_deleted_objects', 'Objects the last garbage collection deleted', () => one(this.summary?.deletedObjects))
    metrics.gauge('nixcas_gc_last_deleted_bytes', 'Bytes the last garbage collection deleted', () => one(this.summary?.deletedBytes))
    metrics.gauge('nixcas_gc_last_deleted_paths', 'Store paths the last garbage collection deleted (evicted ones included)', () => one(this.summary?.deletedPaths))
    metrics.gauge('nixcas_gc_last_evicted_paths', 'Store paths the last garbage collection evicted to fit maxSize', () => one(this.summary?.evictedPaths))
    metrics.gauge('nixcas_gc_last_kept_paths', 'Store paths the last garbage collection kept', () => one(this.summary?.keptPaths))
    metrics.gauge('nixcas_store_stats_timestamp_seconds', 'When the store figures below were taken (by gc or nixcas stats)', () => one(this.stats && this.stats.taken / 1000))
    metrics.gauge('nixcas_store_paths', 'Store paths in the cache', () => one(this.stats?.paths))
    metrics.gauge('nixcas_store_logical_bytes', 'NAR bytes of every path (what Nix downloads, uncompressed)', () => one(this.stats?.logicalBytes))
    metrics.gauge('nixcas_store_stored_bytes', 'Bytes of every object stored', () => one(this.stats?.storedBytes))
    metrics.gauge('nixcas_store_dedup_ratio', 'Logical NAR bytes per byte of file contents stored', () => one(this.stats && this.stats.contentBytes > 0 ? this.stats.logicalBytes / this.stats.contentBytes : undefined))
    metrics.gauge('nixcas_store_objects', 'Objects stored, by kind (first key segment)', () => Object.entries(this.stats?.objects ?? {}).map(([kind, tally]) => [{ kind }, tally.objects]))
    metrics.gauge('nixcas_store_object_bytes', 'Bytes stored, by kind', () => Object.entries(this.stats?.objects ?? {}).map(([kind, tally]) => [{ kind }, tally.bytes]))
  }
}

import { keys } from '../cas/keys.ts'
import type { ObjectStore } from '../stores/store.ts'
import type { GcReport } from './gc.ts'
import type { StoreStats } from './stats.ts'
import type { Tally } from './sweep.ts'

/**
 * What the last runs found, kept in the store so every replica's /metrics can show it
 * without scanning anything on a request: the summary of the last garbage collection
 * (`gc/last`) and the store's figures from the last gc or `nixcas stats` (`stats/last`).
 */
export interface GcSummary {
  run: string
  /** ms since the epoch. */
  started: number
  finished: number
  deletedPaths: number
  evictedPaths: number
  keptPaths: number
  deletedObjects: number
  deletedBytes: number
}

export interface StatsRecord extends StoreStats {
  /** When the figures were taken (ms), and by what. */
  taken: number
  source: 'gc' | 'stats'
}

const sum = (tallies: Record<string, Tally>): Tally =>
  Object.values(tallies).reduce((total, tally) => ({ objects: total.objects + tally.objects, bytes: total.bytes + tally.bytes }), { objects: 0, bytes: 0 })

export function summarize(report: GcReport, started: number, finished: number): GcSummary {
  const deleted = sum(report.deleted)
  return { run: report.run, started, finished, deletedPaths: report.deletedPaths.length, evictedPaths: report.evictedPaths.length, keptPaths: report.keptPaths, deletedObjects: deleted.objects, deletedBytes: deleted.bytes }
}

/** The store after a collection: what it kept is what is stored (objects outside the collected prefixes aside). */
export function statsAfterGc(report: GcReport, taken: number): StatsRecord {
  const content = ['data', 'chunks'].reduce((bytes, kind) => bytes + (report.kept[kind]?.bytes ?? 0), 0)
  return { paths: report.keptPaths, logicalBytes: report.keptNarBytes, storedBytes: sum(report.kept).bytes, contentBytes: content, objects: report.kept, taken, source: 'gc' }
}

/** Records a finished (not dry) collection: its summary and the figures it leaves. */
export async function recordGc(store: ObjectStore, report: GcReport, started: number, finished: number): Promise<void> {
  await store.put(keys.gcLast, Buffer.from(JSON.stringify({ v: 1, ...summarize(report, started, finished) })))
  await writeStats(store, statsAfterGc(report, finished))
}

export async function writeStats(store: ObjectStore, stats: StatsRecord): Promise<void> {
  await store.put(keys.statsRecord, Buffer.from(JSON.stringify({ v: 1, ...stats })))
}

/** A record as written, or undefined when absent or not ours (a newer version, damage). */
async function readRecord<T>(store: ObjectStore, key: string, valid: (value: Record<string, unknown>) => boolean): Promise<(T & { modified: number }) | undefined> {
  const bytes = await store.get(key)
  if (bytes === undefined) return undefined
  try {
    const value = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>
    if (value.v !== 1 || !valid(value)) return undefined
    let modified = 0
    for await (const object of store.list(key)) if (object.key === key) modified = object.modified
    return { ...(value as T), modified }
  } catch {
    return undefined
  }
}

const numbers = (value: Record<string, unknown>, fields: readonly string[]): boolean => fields.every((field) => typeof value[field] === 'number')

export function readGcSummary(store: ObjectStore): Promise<(GcSummary & { modified: number }) | undefined> {
  return readRecord<GcSummary>(store, keys.gcLast, (value) => numbers(value, ['started', 'finished', 'deletedPaths', 'evictedPaths', 'keptPaths', 'deletedObjects', 'deletedBytes']))
}

export function readStats(store: ObjectStore): Promise<(StatsRecord & { modified: number }) | undefined> {
  return readRecord<StatsRecord>(store, keys.statsRecord, (value) => numbers(value, ['paths', 'logicalBytes', 'storedBytes', 'contentBytes', 'taken']) && typeof value.objects === 'object' && value.objects !== null)
}

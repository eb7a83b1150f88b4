import { randomBytes } from 'node:crypto'
import { keys } from '../cas/keys.ts'
import type { ObjectStore } from '../stores/store.ts'

/**
 * Access records: which store paths (narinfo hits) and NARs (NAR downloads) were served,
 * and when, so retention and LRU eviction count downloads as well as pushes. Each replica
 * writes one record per flush (access-recorder.ts); garbage collection merges them all and
 * replaces what it read by compacted records of the paths it kept.
 *
 * A record is text: the line `nixcas-access 1`, then one line per entry, `p<store path
 * hash>` or `n<NAR hash, nixbase32>`, optionally followed by ` <ms since the epoch>`. An
 * entry without a time was served shortly before the record was written, so its time is
 * the record's own (the store's clock, the same clock push times are read from).
 */
const HEADER = 'nixcas-access 1'
/** Hashes in Nix's base-32 alphabet only, so a damaged record can never make a NAR hash that fails to decode. */
const ENTRY = /^([pn])([0-9abcdfghijklmnpqrsvwxyz]{32}|[0-9abcdfghijklmnpqrsvwxyz]{52})(?: (\d{1,16}))?$/
/** Entries per compacted record, so no single object grows with the store. */
const COMPACT_ENTRIES = 50_000

export function encodeAccessRecord(paths: Iterable<string>, nars: Iterable<string>, times?: { paths: ReadonlyMap<string, number>; nars: ReadonlyMap<string, number> }): Buffer {
  const lines = [HEADER]
  // Whole milliseconds: an fs store's times have fractions.
  for (const hash of paths) lines.push(times ? `p${hash} ${Math.floor(times.paths.get(hash) ?? 0)}` : `p${hash}`)
  for (const hash of nars) lines.push(times ? `n${hash} ${Math.floor(times.nars.get(hash) ?? 0)}` : `n${hash}`)
  return Buffer.from(`${lines.join('\n')}\n`)
}

/** Last access by store path hash and by NAR hash (nixbase32), merged from every record. */
export class AccessTimes {
  readonly paths = new Map<string, number>()
  readonly nars = new Map<string, number>()
  /** The records merged, which a compaction replaces. */
  readonly records: string[] = []

  private note(map: Map<string, number>, hash: string, time: number): void {
    if ((map.get(hash) ?? -Infinity) < time) map.set(hash, time)
  }

  /** Merges one record; lines that are not entries (a newer format, damage) are skipped. */
  merge(text: string, modified: number): void {
    const lines = text.split('\n')
    if (lines[0] !== HEADER) return
    for (let index = 1; index < lines.length; index++) {
      const match = ENTRY.exec(lines[index] as string)
      if (!match) continue
      const [, kind, hash, time] = match as unknown as [string, 'p' | 'n', string, string | undefined]
      if ((kind === 'p') !== (hash.length === 32)) continue
      this.note(kind === 'p' ? this.paths : this.nars, hash, time === undefined ? Math.floor(modified) : Number(time))
    }
  }

  /** The last download of a path: of its narinfo or of its NAR. */
  lastAccess(pathHash: string, narHash?: string): number | undefined {
    const path = this.paths.get(pathHash)
    const nar = narHash === undefined ? undefined : this.nars.get(narHash)
    return path === undefined ? nar : nar === undefined ? path : Math.max(path, nar)
  }
}

/** Reads and merges every access record in the store: one listing, one read per record. */
export async function readAccessTimes(store: ObjectStore): Promise<AccessTimes> {
  const times = new AccessTimes()
  for await (const object of store.list(keys.accessRecords)) {
    const bytes = await store.get(object.key)
    if (bytes === undefined) continue
    times.merge(bytes.toString('latin1'), object.modified)
    times.records.push(object.key)
  }
  return times
}

/**
 * Replaces the records merged into `times` by compacted ones holding only what is still
 * wanted (kept paths, their NARs). The new records are written before the old ones go, so
 * a crash in between leaves duplicates, which merging takes the latest of. Records other
 * replicas write meanwhile are not touched.
 */
export async function compactAccessTimes(store: ObjectStore, times: AccessTimes, keep: { path(hash: string): boolean; nar(hash: string): boolean }): Promise<number> {
  const paths = [...times.paths.keys()].filter((hash) => keep.path(hash))
  const nars = [...times.nars.keys()].filter((hash) => keep.nar(hash))
  const name = `${Date.now().toString(36)}-compact-${randomBytes(6).toString('hex')}`
  let written = 0
  for (let start = 0; start < paths.length + nars.length; start += COMPACT_ENTRIES) {
    const end = start + COMPACT_ENTRIES
    const someNars = nars.slice(Math.max(0, start - paths.length), Math.max(0, end - paths.length))
    await store.put(keys.accessRecord(`${name}-${written++}`), encodeAccessRecord(paths.slice(start, end), someNars, times))
  }
  await store.deleteMany(times.records)
  return written
}

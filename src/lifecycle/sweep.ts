import type { ListedObject, ObjectStore } from '../stores/store.ts'
import type { MarkSet } from './mark.ts'

/** Objects and bytes of one kind. */
export interface Tally {
  objects: number
  bytes: number
}

export const tallyOf = (): Tally => ({ objects: 0, bytes: 0 })

/** Keys per deleteMany call: S3's DeleteObjects limit. */
const DELETE_BATCH = 1000

/**
 * Walks a prefix and deletes what its rule does not keep, in batches, as the listing
 * streams (nothing but the batch is held). An object younger than the cutoff is always
 * kept. Dry, it only counts.
 */
export class Sweeper {
  readonly deleted = new Map<string, Tally>()
  readonly kept = new Map<string, Tally>()
  constructor(
    private readonly store: ObjectStore,
    private readonly cutoff: number,
    private readonly dryRun: boolean,
    /** Every key kept, when a cache's near side is to be swept against them (exact but for chunk-level keys, see MarkSet). */
    readonly keptKeys?: MarkSet,
  ) {}

  private count(into: Map<string, Tally>, kind: string, object: ListedObject): void {
    let tally = into.get(kind)
    if (!tally) into.set(kind, (tally = tallyOf()))
    tally.objects++
    tally.bytes += object.size
  }

  /**
   * Sweeps `prefix`; `keep` decides for objects older than the cutoff. `beforeDelete` sees
   * each batch before it goes (and may write what must survive it).
   */
  async sweep(prefix: string, keep: (object: ListedObject) => boolean | Promise<boolean>, beforeDelete?: (batch: readonly string[]) => Promise<void>): Promise<void> {
    const kind = prefix.replace(/\/$/, '')
    let batch: string[] = []
    for await (const object of this.store.list(prefix)) {
      if (object.modified >= this.cutoff || (await keep(object))) {
        this.count(this.kept, kind, object)
        this.keptKeys?.add(object.key)
        continue
      }
      this.count(this.deleted, kind, object)
      batch.push(object.key)
      if (batch.length >= DELETE_BATCH) batch = await this.flush(batch, beforeDelete)
    }
    await this.flush(batch, beforeDelete)
  }

  /** Deletes keys now (dry: counts nothing more; the caller counted them). */
  async flush(batch: string[], beforeDelete?: (batch: readonly string[]) => Promise<void>): Promise<string[]> {
    if (batch.length === 0) return []
    await beforeDelete?.(batch)
    if (!this.dryRun) await this.store.deleteMany(batch)
    return []
  }
}

/**
 * A cache's near side: it may hold copies far no longer has (deleted by a GC on another
 * replica, or written back before far lost them). Whatever near holds under the swept
 * prefixes that far's sweep did not keep goes, unless younger than the cutoff. A chunk-level
 * key far's marks hold only approximately may keep a near copy that could go: immutable
 * bytes nothing points at, collected by a later run.
 */
export async function sweepNear(near: ObjectStore, prefixes: readonly string[], keptKeys: Pick<MarkSet, 'has'>, cutoff: number, dryRun: boolean): Promise<Tally> {
  const tally = tallyOf()
  const sweeper = new Sweeper(near, cutoff, dryRun)
  for (const prefix of prefixes) await sweeper.sweep(prefix, (object) => keptKeys.has(object.key))
  for (const deleted of sweeper.deleted.values()) {
    tally.objects += deleted.objects
    tally.bytes += deleted.bytes
  }
  return tally
}

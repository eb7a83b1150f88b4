import { digestHex, digestOf } from '../castore/digest.ts'
import { FsStore } from '../stores/fs.ts'
import { GcsStore } from '../stores/gcs.ts'
import { MemoryStore } from '../stores/memory.ts'
import { S3Store } from '../stores/s3.ts'
import type { ObjectStore } from '../stores/store.ts'
import type { Finding } from './verify.ts'

export interface RepairAction {
  key: string
  /** Backends whose copy was corrupt and now holds a good one again. */
  repaired: string[]
  /** Backends whose copy is corrupt and could not be repaired (no good copy anywhere). */
  unrepaired: string[]
}

const DATA_PACK = /^data\/[0-9a-f]{2}\/([0-9a-f]{64})$/

/** Whether bytes are the object a content-addressed key names; undefined for kinds this cannot check. */
function intact(key: string, bytes: Uint8Array): boolean | undefined {
  const pack = DATA_PACK.exec(key)
  return pack ? digestHex(digestOf(bytes)) === pack[1] : undefined
}

/**
 * The backends of a composition (fs, S3, GCS, memory): every place a copy of an object may
 * be. A `cache` store's near and far sides, the members of a `priority` or `race` store
 * all hold the same key space; wrappers (retry, lru, instrumented) hold no copies of their own.
 */
export function copyHolders(instances: Iterable<ObjectStore>): ObjectStore[] {
  return [...instances].filter((store) => store instanceof FsStore || store instanceof S3Store || store instanceof GcsStore || store instanceof MemoryStore)
}

/**
 * `nixcas verify --repair`: for each finding about a data pack, reads the pack from every
 * backend, deletes the copies that fail their digest and writes a good copy (from any other
 * backend) in their place. A pack with no good copy anywhere is left as found. Other kinds
 * of findings (incomplete closures, missing objects) are reported, not repaired. One pack
 * is held at a time.
 */
export async function repairFindings(findings: readonly Finding[], holders: readonly ObjectStore[]): Promise<RepairAction[]> {
  const actions: RepairAction[] = []
  for (const key of new Set(findings.map((finding) => finding.key))) {
    if (!DATA_PACK.test(key)) continue
    let good: Buffer | undefined
    const corrupt: ObjectStore[] = []
    for (const holder of holders) {
      const bytes = await holder.get(key)
      if (bytes === undefined) continue
      if (intact(key, bytes)) good ??= bytes
      else corrupt.push(holder)
    }
    if (corrupt.length === 0) continue
    const action: RepairAction = { key, repaired: [], unrepaired: [] }
    for (const holder of corrupt) {
      if (good === undefined) {
        action.unrepaired.push(holder.name)
        continue
      }
      await holder.delete(key)
      await holder.put(key, good)
      action.repaired.push(holder.name)
    }
    actions.push(action)
  }
  return actions
}

import type { Cas } from '../cas/cas.ts'
import { keys } from '../cas/keys.ts'
import { digestHex } from '../castore/digest.ts'
import type { NarRecord } from '../castore/nar-record.ts'
import type { CasNode } from '../castore/node.ts'
import type { NixHash } from '../nix/hash.ts'
import { loadClosure } from '../render/closure.ts'

/**
 * The mark set: the keys of objects that kept paths (and live leases) need. A Set of keys:
 * with data packs the objects per path are a handful (its PathInfo, NAR record, upload
 * name, the packs it shares), so the set grows with paths and packs, not with chunks —
 * 10 million chunks of 64 KiB fill about 40 000 packs of 16 MiB. Only stores of the old
 * layout (one object per chunk) put every chunk key in it (about 100 bytes each).
 */
export class MarkSet {
  private readonly marked = new Set<string>()

  /** Marks a key; true when it was not marked yet. */
  add(key: string): boolean {
    if (this.marked.has(key)) return false
    this.marked.add(key)
    return true
  }

  has(key: string): boolean {
    return this.marked.has(key)
  }

  get size(): number {
    return this.marked.size
  }
}

/**
 * The chunk bytes kept NARs use in each data pack, by pack digest hex: what tells a pack
 * that is only partly referenced (its dead bytes could be reclaimed by repacking). One
 * entry per referenced chunk of the kept packs.
 */
export class PackUsage {
  private readonly chunks = new Map<string, Map<number, number>>()

  add(pack: string, offset: number, size: number): void {
    let used = this.chunks.get(pack)
    if (!used) this.chunks.set(pack, (used = new Map<number, number>()))
    used.set(offset, size)
  }

  liveBytes(pack: string): number {
    let total = 0
    for (const size of this.chunks.get(pack)?.values() ?? []) total += size
    return total
  }
}

/**
 * Marks what one NAR needs: its record and, for a record with data packs, those packs; for
 * a record of the old layout (root only), its closure pack, directories, blob manifests and
 * chunk objects. Returns false when the record itself is missing.
 */
export async function markNar(cas: Cas, marks: MarkSet, usage: PackUsage, narHash: NixHash): Promise<boolean> {
  const key = keys.narRecord(narHash)
  if (marks.has(key)) return true
  const record = await cas.getNarRecord(narHash)
  if (record === undefined) return false
  marks.add(key)
  await markRecord(cas, marks, usage, record)
  return true
}

export async function markRecord(cas: Cas, marks: MarkSet, usage: PackUsage, record: NarRecord): Promise<void> {
  if (record.tree) {
    for (const pack of record.tree.packs) marks.add(keys.dataPack(pack))
    for (const chunks of record.tree.blobs.values()) {
      for (const chunk of chunks) if (chunk.location) usage.add(digestHex(chunk.location.pack), chunk.location.offset, chunk.size)
    }
    return
  }
  await markOldTree(cas, marks, record.root)
}

/** The objects of a tree stored before data packs: each directory, manifest and chunk its own object. */
async function markOldTree(cas: Cas, marks: MarkSet, root: CasNode): Promise<void> {
  const markFile = (node: CasNode, manifest?: readonly { digest: Buffer }[]): void => {
    if (node.type !== 'file' || node.size === 0) return
    if (!node.chunked) {
      marks.add(keys.chunk(node.digest))
      return
    }
    marks.add(keys.manifest(node.digest))
    for (const chunk of manifest ?? []) marks.add(keys.chunk(chunk.digest))
  }
  if (root.type !== 'directory') {
    markFile(root, root.type === 'file' && root.chunked ? await cas.getManifest(root.digest, root.size) : undefined)
    return
  }
  marks.add(keys.closurePack(root.digest))
  const closure = await loadClosure(cas, root)
  for (const [id, entries] of closure.directories) {
    marks.add(keys.directory(Buffer.from(id, 'hex')))
    for (const { node } of entries) markFile(node, node.type === 'file' && node.chunked ? closure.manifests.get(digestHex(node.digest)) : undefined)
  }
}

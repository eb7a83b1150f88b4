import type { Cas } from '../cas/cas.ts'
import { keys, prefixes } from '../cas/keys.ts'
import { digestHex, type Digest } from '../castore/digest.ts'
import type { NarRecord } from '../castore/nar-record.ts'
import type { CasNode } from '../castore/node.ts'
import type { NixHash } from '../nix/hash.ts'
import { loadClosure } from '../render/closure.ts'
import { ApproximateSet, hashNumber, hashString, type ApproximateSetOptions, type ApproximateSetStats } from './bloom.ts'

/**
 * Prefixes of objects nothing points at but a tree that is itself marked: chunks, blob
 * manifests, directories and closure packs of the old layout (one object per chunk). Only
 * these may be marked approximately: keeping one that is garbage hides nothing and breaks
 * nothing, and no traversal ever stops at one. Pointers (PathInfos, NAR records, upload
 * names…) and data packs stay exact: a false positive there would keep a record whose
 * objects went, or skip a path's closure.
 */
const APPROXIMATE_PREFIXES = [prefixes.chunks, prefixes.manifests, prefixes.directories, prefixes.closurePacks] as const

const isApproximate = (key: string): boolean => APPROXIMATE_PREFIXES.some((prefix) => key.startsWith(prefix))

/**
 * The mark set: the keys of objects that kept paths (and live leases) need. Pointer keys
 * and data packs (a handful per path, one per ~250 chunks) are held exactly; the per-chunk
 * keys of the old layout in an ApproximateSet, a Set while small and a Bloom filter beyond
 * (bloom.ts), so 10 million of them cost about 12 MiB instead of a gigabyte.
 */
export class MarkSet {
  private readonly exact = new Set<string>()
  private readonly leaves: ApproximateSet<string>

  constructor(options?: ApproximateSetOptions) {
    this.leaves = new ApproximateSet(hashString, options)
  }

  /** Marks a key; true when it was not marked yet (for a leaf key, as far as its filter can tell). */
  add(key: string): boolean {
    if (isApproximate(key)) return this.leaves.add(key)
    if (this.exact.has(key)) return false
    this.exact.add(key)
    return true
  }

  has(key: string): boolean {
    return isApproximate(key) ? this.leaves.has(key) : this.exact.has(key)
  }

  get stats(): { exact: number; leaves: ApproximateSetStats } {
    return { exact: this.exact.size, leaves: this.leaves.stats }
  }
}

/** One data pack's share of PackUsage: the bytes counted in it, and its hash in the dedup filter. */
export interface PackCounter {
  readonly id: number
  bytes: number
}

/**
 * The chunk bytes kept NARs use in each data pack: what tells a pack that is only partly
 * referenced (its dead bytes could be reclaimed by repacking). A counter per pack, and the
 * chunks already counted (a chunk shared by several NARs counts once) as (pack, offset)
 * pairs in an ApproximateSet. A false positive there leaves a used chunk uncounted, so a
 * pack may look deader than it is; that errs only in the report (and in which packs are
 * worth rewriting), never in what is kept: a pack is kept by its exact mark.
 */
export class PackUsage {
  private readonly packs = new Map<string, PackCounter>()
  private readonly counted: ApproximateSet<number>

  constructor(options?: ApproximateSetOptions) {
    this.counted = new ApproximateSet(hashNumber, options)
  }

  /** The counter of a pack (by digest hex), made on first use. */
  pack(pack: string): PackCounter {
    let counter = this.packs.get(pack)
    if (!counter) this.packs.set(pack, (counter = { id: this.packs.size, bytes: 0 }))
    return counter
  }

  /** Counts a chunk of `size` bytes at `offset` in a pack, unless counted already. Offsets are below 2^32 (record format). */
  add(pack: PackCounter, offset: number, size: number): void {
    if (this.counted.add(pack.id * 2 ** 32 + offset)) pack.bytes += size
  }

  liveBytes(pack: string): number {
    return this.packs.get(pack)?.bytes ?? 0
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
    // A record's chunks name its packs by the very digests of `packs` (see decodeNarRecordV2): counters are found by identity.
    const counters = new Map<Digest, PackCounter>()
    for (const pack of record.tree.packs) {
      marks.add(keys.dataPack(pack))
      counters.set(pack, usage.pack(digestHex(pack)))
    }
    for (const chunks of record.tree.blobs.values()) {
      for (const chunk of chunks) {
        if (!chunk.location) continue
        const counter = counters.get(chunk.location.pack) ?? usage.pack(digestHex(chunk.location.pack))
        usage.add(counter, chunk.location.offset, chunk.size)
      }
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

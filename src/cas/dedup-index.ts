import { randomBytes } from 'node:crypto'
import { LRUCache } from 'lru-cache'
import { upToEntries } from '../lru-entries.ts'
import type { Digest } from '../castore/digest.ts'
import { decodeIndexSegment, encodeIndexSegment, type IndexedChunk } from '../castore/index-segment.ts'
import type { Cas } from './cas.ts'
import { keyId } from './keys.ts'
import { isNixcasError } from '../errors.ts'

/** A fresh index segment name: time first, so names sort by age, then random, so replicas never collide. */
export const newSegmentName = (): string => `${Date.now().toString(36).padStart(9, '0')}-${randomBytes(6).toString('hex')}`

/** An index segment's entries, or undefined when it does not decode. */
export function decodeOrSkip(bytes: Uint8Array): IndexedChunk[] | undefined {
  try {
    return decodeIndexSegment(bytes)
  } catch (error) {
    if (isNixcasError(error, 'CORRUPT_OBJECT')) return undefined
    throw error
  }
}

/** Roughly what one entry costs in memory (key, location, LRU bookkeeping). */
export const DEDUP_ENTRY_BYTES = 200

/**
 * Which chunks are already stored, and where: what lets an ingest reference a chunk
 * instead of storing it again. Bounded (least recently used entries go first), so on a
 * very large store dedup is exact for recent and popular chunks and best effort beyond:
 * a miss only stores a chunk twice, it never loses one. Fed by this process's ingests,
 * by the NAR records it reads, and by the index segments every replica writes.
 */
export class DedupIndex {
  private readonly entries: LRUCache<string, IndexedChunk>
  /** Segments already read, so a refresh reads only new ones. */
  private readonly seenSegments = new Set<string>()

  constructor(readonly maxEntries: number) {
    this.entries = new LRUCache(upToEntries(maxEntries))
  }

  get size(): number {
    return this.entries.size
  }

  get(digest: Digest): IndexedChunk | undefined {
    return this.entries.get(digest.toString('latin1'))
  }

  add(chunk: IndexedChunk): void {
    this.entries.set(chunk.digest.toString('latin1'), chunk)
  }

  /** Records what an ingest added, for every replica; returns the segment's name. */
  async publish(cas: Cas, chunks: readonly IndexedChunk[]): Promise<string | undefined> {
    if (chunks.length === 0) return undefined
    const name = newSegmentName()
    await cas.putIndexSegment(name, encodeIndexSegment(chunks))
    this.seenSegments.add(name)
    for (const chunk of chunks) this.add(chunk)
    return name
  }

  /**
   * Reads index segments not seen yet, newest first, until the index is full. Returns how
   * many chunks it learned. Run at start-up and periodically (other replicas' ingests).
   */
  async refresh(cas: Cas, signal?: AbortSignal): Promise<number> {
    const unseen: { key: string; modified: number }[] = []
    for await (const object of cas.listIndexSegments()) {
      if (!this.seenSegments.has(keyId(object.key))) unseen.push(object)
    }
    unseen.sort((a, b) => b.modified - a.modified || (a.key < b.key ? 1 : -1))
    // Newest first until the index would be full; then added oldest first, so the newest
    // end up the most recently used.
    const batches: IndexedChunk[][] = []
    let learned = 0
    for (const object of unseen) {
      if (learned >= this.maxEntries) break
      signal?.throwIfAborted()
      const bytes = await cas.getIndexSegment(object.key, signal)
      this.seenSegments.add(keyId(object.key))
      // A segment that does not decode (cut short by a crash: they are not synced) is only a hint lost.
      const chunks = bytes && decodeOrSkip(bytes)
      if (chunks === undefined) continue
      batches.push(chunks)
      learned += chunks.length
    }
    for (const chunks of batches.reverse()) for (const chunk of chunks) this.add(chunk)
    return learned
  }
}

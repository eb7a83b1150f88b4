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

/** Entries past which a batch of published chunks is written at once (a segment of ~2.5 MB). */
const SEGMENT_ENTRIES = 64 * 1024

export interface DedupIndexOptions {
  /**
   * How long chunks an ingest added wait before they go out to other replicas, gathered into
   * one index segment with those of later ingests (ms). 0: a segment per ingest, at once.
   */
  publishMs?: number
  /** Told when writing a segment fails; its entries go out with the next one (room permitting). */
  onError?: (error: unknown) => void
}

/**
 * Which chunks are already stored, and where: what lets an ingest reference a chunk
 * instead of storing it again. Bounded (least recently used entries go first), so on a
 * very large store dedup is exact for recent and popular chunks and best effort beyond:
 * a miss only stores a chunk twice, it never loses one. Fed by this process's ingests,
 * by the NAR records it reads, and by the index segments every replica writes.
 *
 * What an ingest adds is known here at once; other replicas learn it from a segment that
 * gathers the chunks of every ingest within `publishMs` (one object for many NARs, not one
 * per NAR). Segments are hints: one lost with a crash only costs a chunk stored twice.
 */
export class DedupIndex {
  private readonly entries: LRUCache<string, IndexedChunk>
  /** Segments already read, so a refresh reads only new ones. */
  private readonly seenSegments = new Set<string>()
  /** Chunks added here and not yet in a segment, and the store they go to. */
  private pending: IndexedChunk[] = []
  private pendingCas: Cas | undefined
  private timer: NodeJS.Timeout | undefined
  private writing: Promise<void> | undefined

  constructor(
    readonly maxEntries: number,
    private readonly options: DedupIndexOptions = {},
  ) {
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

  /** Records what an ingest added: here at once, for every replica in a segment (now, or within `publishMs`). */
  async publish(cas: Cas, chunks: readonly IndexedChunk[]): Promise<void> {
    if (chunks.length === 0) return
    for (const chunk of chunks) this.add(chunk)
    if (!this.options.publishMs) {
      await this.writeSegment(cas, chunks)
      return
    }
    if (this.pendingCas !== undefined && this.pendingCas !== cas) await this.flush()
    this.pendingCas = cas
    this.pending.push(...chunks)
    if (this.pending.length >= SEGMENT_ENTRIES) void this.flush()
    else this.timer ??= setTimeout(() => void this.flush(), this.options.publishMs).unref()
  }

  /** Writes the chunks waiting to go out as one segment (one write at a time); never throws. */
  async flush(): Promise<void> {
    clearTimeout(this.timer)
    this.timer = undefined
    while (this.writing) await this.writing
    const cas = this.pendingCas
    const chunks = this.pending
    if (cas === undefined || chunks.length === 0) return
    this.pending = []
    this.writing = this.writeSegment(cas, chunks).catch((error: unknown) => {
      this.options.onError?.(error)
      // Tried again with the next segment; a store that stays down costs hints, not memory.
      this.pending = [...chunks, ...this.pending].slice(-4 * SEGMENT_ENTRIES)
      this.timer ??= setTimeout(() => void this.flush(), this.options.publishMs).unref()
    })
    try {
      await this.writing
    } finally {
      this.writing = undefined
    }
  }

  /** Publishes what waits: at shutdown, before the stores close. */
  close(): Promise<void> {
    return this.flush()
  }

  private async writeSegment(cas: Cas, chunks: readonly IndexedChunk[]): Promise<void> {
    const name = newSegmentName()
    await cas.putIndexSegment(name, encodeIndexSegment(chunks))
    this.seenSegments.add(name)
  }

  /**
   * Reads index segments not seen yet, newest first, until the index is full. Returns how
   * many chunks it learned. Run at start-up and periodically (other replicas' ingests).
   */
  async refresh(cas: Cas, signal?: AbortSignal): Promise<number> {
    const unseen: { key: string; modified: number }[] = []
    const listed = new Set<string>()
    for await (const object of cas.listIndexSegments()) {
      const name = keyId(object.key)
      listed.add(name)
      if (!this.seenSegments.has(name)) unseen.push(object)
    }
    // Segments garbage collection rewrote or removed are forgotten, so the set stays the size of the listing.
    for (const name of this.seenSegments) if (!listed.has(name)) this.seenSegments.delete(name)
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

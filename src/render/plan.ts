import { NixcasError } from '../errors.ts'
import { DigestStream, digestHex, digestsEqual, type Digest } from '../castore/digest.ts'
import type { ChunkRef } from '../castore/manifest.ts'
import type { Cas } from '../cas/cas.ts'
import type { BufferPool } from '../buffer-pool.ts'
import { segmentAt, type Layout, type Segment } from './layout.ts'

/** How reads are grouped: chunks of one pack close to each other become one ranged read. */
export interface ReadPlan {
  /** The longest single read. */
  maxRunBytes: number
  /** Unneeded bytes a read may take in to join the next chunk of the same pack (one request instead of two). */
  gapBytes: number
}

/** A byte range of the NAR, end exclusive. */
export interface NarRange {
  start: number
  end: number
}

/** One ranged read of a data pack: chunks near each other, fetched (and, from an untrusted store, checked) at once. */
export class PackRun {
  /** The chunks it must check, once each, at their place in the read. */
  readonly chunks: { digest: Digest; size: number; at: number }[] = []
  private readonly offsets = new Set<number>()
  bytes: Buffer | undefined

  constructor(
    readonly pack: Digest,
    readonly start: number,
    public end: number,
  ) {}

  get size(): number {
    return this.end - this.start
  }

  /** Whether the chunk at `offset` of `pack` can come from this read, extended or not. */
  takes(pack: Digest, offset: number, size: number, plan: ReadPlan): boolean {
    if (pack !== this.pack && !digestsEqual(pack, this.pack)) return false
    if (offset >= this.start && offset + size <= this.end) return true
    return offset >= this.end && offset - this.end <= plan.gapBytes && offset + size - this.start <= plan.maxRunBytes
  }

  /** Adds a chunk (once) and returns where it starts in the read. */
  add(chunk: ChunkRef, offset: number): number {
    this.end = Math.max(this.end, offset + chunk.size)
    const at = offset - this.start
    if (!this.offsets.has(offset)) {
      this.offsets.add(offset)
      this.chunks.push({ digest: chunk.digest, size: chunk.size, at })
    }
    return at
  }

  async fetch(cas: Cas, signal: AbortSignal, pool?: BufferPool): Promise<void> {
    this.bytes = await cas.readPackRun(this.pack, this.start, this.size, this.chunks, signal, pool && ((size) => pool.take(size)))
  }
}

/** A chunk stored as an object of its own (stores from before data packs). */
class ChunkObject {
  bytes: Buffer | undefined

  constructor(private readonly chunk: ChunkRef) {}

  get size(): number {
    return this.chunk.size
  }

  async fetch(cas: Cas, signal: AbortSignal): Promise<void> {
    this.bytes = await cas.getChunk(this.chunk.digest, this.chunk.size, signal)
  }
}

/** A copy of a chunk the NAR uses again further on, kept from its first read to its last use. */
export class Retained {
  bytes: Buffer | undefined

  constructor(
    readonly size: number,
    /** NAR offset of the chunk's last use. */
    readonly lastUse: number,
  ) {}
}

/** Hashes a file's pieces in NAR order and fails at the last one if the blob digest differs. */
export class BlobCheck {
  private readonly hasher = new DigestStream()

  constructor(private readonly digest: Digest) {}

  update(bytes: Uint8Array, last: boolean): void {
    this.hasher.update(bytes)
    if (last && !digestsEqual(this.hasher.digest(), this.digest)) {
      throw new NixcasError('CORRUPT_OBJECT', `blob ${digestHex(this.digest)} does not match its digest`)
    }
  }
}

export type Read = PackRun | ChunkObject

/** One piece of output, in NAR order: framing held in memory, or bytes `start..end` of a read or a retained copy. */
export type Piece =
  | { readonly kind: 'bytes'; readonly bytes: Uint8Array }
  | {
      readonly kind: 'chunk'
      readonly source: Read | Retained
      readonly start: number
      readonly end: number
      /** Copy the whole chunk at `retainAt` of the source into this, for later uses. */
      readonly retain?: Retained
      readonly retainAt?: number
      /** The NAR's last use of this retained copy: it is dropped once this piece is out. */
      readonly release?: Retained
      readonly check?: BlobCheck
      readonly last?: boolean
    }

/** At most one read, and the pieces that come before the next one: the unit the prefetcher fetches ahead. */
export interface Batch {
  readonly read: Read | undefined
  readonly pieces: Piece[]
}

/** Room for retained copies: the render reserves it before it plans a copy and gives it back at the copy's last use. */
export interface Retention {
  reserve(size: number): boolean
  release(size: number): void
}

type Uses = Map<Digest, Map<number, number>>
const lastUseCache = new WeakMap<Layout, Uses>()

/**
 * For each chunk a NAR uses more than once (identical files, shared chunks), the NAR offset
 * of its last use: what tells the planner a copy is worth keeping and until when. Computed
 * once per layout (layouts are cached); chunks used once are not kept.
 */
function lastUses(layout: Layout): Uses {
  const cached = lastUseCache.get(layout)
  if (cached) return cached
  const seen = new Map<Digest, Map<number, { first: number; last: number }>>()
  for (const segment of layout.segments) {
    if (segment.kind !== 'file') continue
    let at = segment.offset
    for (const chunk of segment.chunks) {
      const location = chunk.location
      if (location) {
        let offsets = seen.get(location.pack)
        if (!offsets) seen.set(location.pack, (offsets = new Map<number, { first: number; last: number }>()))
        const use = offsets.get(location.offset)
        if (use) use.last = at
        else offsets.set(location.offset, { first: at, last: at })
      }
      at += chunk.size
    }
  }
  const uses: Uses = new Map()
  for (const [pack, offsets] of seen) {
    const repeated = new Map<number, number>()
    for (const [offset, use] of offsets) if (use.last > use.first) repeated.set(offset, use.last)
    if (repeated.size > 0) uses.set(pack, repeated)
  }
  lastUseCache.set(layout, uses)
  return uses
}

/**
 * The reads and pieces of `range`, batch by batch, in order. Chunks in data packs are read
 * in runs: the next chunk joins the open read when it lies in the same pack within
 * `plan.gapBytes` after it (or inside it) and the read stays under `plan.maxRunBytes`. A
 * chunk the NAR uses again later is copied out of its read while `retention` has room, and
 * its later uses come from the copy: a tree whose files repeat (licences, identical
 * docs) costs a read per stretch of a pack, not one per repeat. Chunks stored as objects of
 * their own (older stores) are read one by one. A file rendered whole from an untrusted
 * store is also checked against its blob digest, since a record could pair genuine chunks
 * in the wrong order.
 */
export function* planBatches(layout: Layout, range: NarRange, plan: ReadPlan, retention: Retention, verify: boolean): Generator<Batch> {
  if (range.start >= range.end) return
  const uses = lastUses(layout)
  const retained = new Map<Digest, Map<number, Retained>>()
  let read: Read | undefined
  let pieces: Piece[] = []
  const close = (): Batch | undefined => {
    if (read === undefined && pieces.length === 0) return undefined
    const batch = { read, pieces }
    read = undefined
    pieces = []
    return batch
  }

  for (let index = segmentAt(layout, range.start); index < layout.segments.length; index++) {
    const segment = layout.segments[index] as Segment
    if (segment.offset >= range.end) break
    const from = Math.max(range.start, segment.offset) - segment.offset
    if (segment.kind === 'bytes') {
      const to = Math.min(range.end, segment.offset + segment.bytes.length) - segment.offset
      pieces.push({ kind: 'bytes', bytes: segment.bytes.subarray(from, to) })
      continue
    }
    const to = Math.min(range.end, segment.offset + segment.node.size) - segment.offset
    const whole = from === 0 && to === segment.node.size
    const check = whole && verify && segment.chunks.length > 1 ? new BlobCheck(segment.node.digest) : undefined
    let chunkStart = 0
    for (let position = 0; position < segment.chunks.length; position++) {
      const chunk = segment.chunks[position] as ChunkRef
      const chunkEnd = chunkStart + chunk.size
      if (chunkEnd > from && chunkStart < to) {
        const sliceFrom = Math.max(from, chunkStart) - chunkStart
        const sliceTo = Math.min(to, chunkEnd) - chunkStart
        const last = check !== undefined && position === segment.chunks.length - 1
        const location = chunk.location
        if (location === undefined) {
          const batch = close()
          if (batch) yield batch
          read = new ChunkObject(chunk)
          pieces.push({ kind: 'chunk', source: read, start: sliceFrom, end: sliceTo, check, last })
          yield close() as Batch
        } else {
          const narAt = segment.offset + chunkStart
          const copy = retained.get(location.pack)?.get(location.offset)
          if (copy !== undefined && copy.size === chunk.size) {
            const release = narAt >= copy.lastUse ? copy : undefined
            if (release) retained.get(location.pack)?.delete(location.offset)
            pieces.push({ kind: 'chunk', source: copy, start: sliceFrom, end: sliceTo, release, check, last })
          } else if (!verify && chunk.size > plan.maxRunBytes) {
            // No chunk check from a trusted store: a chunk larger than a read is read in
            // parts, so no read outgrows the reads of its plan (on a local disk, every read
            // fits one pool block). Parts are not retained: a later use reads them again.
            const batch = close()
            if (batch) yield batch
            for (let part = sliceFrom; part < sliceTo; part += plan.maxRunBytes) {
              const partEnd = Math.min(sliceTo, part + plan.maxRunBytes)
              read = new PackRun(location.pack, location.offset + part, location.offset + partEnd)
              pieces.push({ kind: 'chunk', source: read, start: 0, end: partEnd - part })
              yield close() as Batch
            }
          } else {
            if (!(read instanceof PackRun && read.takes(location.pack, location.offset, chunk.size, plan))) {
              const batch = close()
              if (batch) yield batch
              read = new PackRun(location.pack, location.offset, location.offset)
            }
            const run = read
            const at = run.add(chunk, location.offset)
            const lastUse = uses.get(location.pack)?.get(location.offset)
            let retain: Retained | undefined
            if (lastUse !== undefined && lastUse > narAt && retention.reserve(chunk.size)) {
              retain = new Retained(chunk.size, lastUse)
              let offsets = retained.get(location.pack)
              if (!offsets) retained.set(location.pack, (offsets = new Map<number, Retained>()))
              offsets.set(location.offset, retain)
            }
            pieces.push({ kind: 'chunk', source: run, start: at + sliceFrom, end: at + sliceTo, retain, retainAt: at, check, last })
          }
        }
      }
      chunkStart = chunkEnd
    }
  }
  const batch = close()
  if (batch) yield batch
}

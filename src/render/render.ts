import type { ByteBudget } from '../budget.ts'
import { NixcasError } from '../errors.ts'
import { DigestStream, digestHex, digestsEqual } from '../castore/digest.ts'
import type { ChunkRef } from '../castore/manifest.ts'
import type { Cas } from '../cas/cas.ts'
import { segmentAt, type Layout, type Segment } from './layout.ts'
import { prefetch, type FetchJob, type PrefetchStats } from './prefetcher.ts'
import type { Locality } from '../stores/store.ts'

export interface RenderOptions {
  /** Bytes fetched ahead of the client (W). */
  windowBytes?: number
  /** Chunk requests in flight at once (C). */
  maxRequests?: number
  signal?: AbortSignal
  stats?: PrefetchStats
  /** Shared by every NAR response at once. */
  budget?: ByteBudget
  plan?: ReadPlan
}


const MiB = 1024 * 1024
/**
 * Defaults by where the bytes are (`npm run bench -- shootout`): a local disk answers in
 * microseconds, so a few reads of a few MiB ahead keep up with the socket; a remote store
 * answers in tens of milliseconds, so more and longer reads must be in flight, and reading
 * through a small gap is cheaper than another request.
 */
export const RENDER_DEFAULTS: Record<Locality, { windowBytes: number; maxRequests: number; plan: ReadPlan }> = {
  local: { windowBytes: 8 * MiB, maxRequests: 8, plan: { maxRunBytes: 2 * MiB, gapBytes: 0 } },
  remote: { windowBytes: 32 * MiB, maxRequests: 32, plan: { maxRunBytes: 8 * MiB, gapBytes: 256 * 1024 } },
}

/** A byte range of the NAR, end exclusive. */
export interface NarRange {
  start: number
  end: number
}

const literal = (bytes: Uint8Array): FetchJob => ({ size: 0, fetch: () => Promise.resolve(bytes) })

/** How reads are grouped: runs of adjacent chunks in one pack become one ranged read. */
export interface ReadPlan {
  /** The longest single read. */
  maxRunBytes: number
  /** Unneeded bytes a run may read through to join the next chunk of the same pack (one request instead of two). */
  gapBytes: number
}


/** One ranged read of a data pack, shared by the pieces cut from it. */
class PackRun {
  readonly chunks: { digest: ChunkRef['digest']; size: number; at: number }[] = []
  private result: Promise<Buffer> | undefined

  constructor(
    private readonly cas: Cas,
    readonly pack: Uint8Array,
    readonly start: number,
    public end: number,
  ) {}

  read(signal: AbortSignal): Promise<Buffer> {
    this.result ??= this.cas.readPackRun(Buffer.from(this.pack), this.start, this.end - this.start, this.chunks, signal)
    return this.result
  }
}

/**
 * Every fetch the range needs, in order: literal framing, and slices of chunks. Chunks in
 * data packs are read in runs (adjacent chunks of one pack, up to `plan.maxRunBytes`, one
 * ranged read each); chunks stored as objects of their own (older stores) one by one, a
 * file rendered whole from an untrusted store also checked against its blob digest.
 */
function* jobsFor(cas: Cas, layout: Layout, range: NarRange, plan: ReadPlan): Generator<FetchJob> {
  if (range.start >= range.end) return
  let run: PackRun | undefined
  const waiting: FetchJob[] = []
  const closeRun = function* (): Generator<FetchJob> {
    run = undefined
    yield* waiting.splice(0)
  }
  for (let index = segmentAt(layout, range.start); index < layout.segments.length; index++) {
    const segment = layout.segments[index] as Segment
    if (segment.offset >= range.end) break
    const from = Math.max(range.start, segment.offset) - segment.offset
    if (segment.kind === 'bytes') {
      const to = Math.min(range.end, segment.offset + segment.bytes.length) - segment.offset
      const job = literal(segment.bytes.subarray(from, to))
      if (run) waiting.push(job)
      else yield job
      continue
    }
    const to = Math.min(range.end, segment.offset + segment.node.size) - segment.offset
    if (segment.chunks[0]?.location === undefined) {
      yield* closeRun()
      yield* objectJobs(cas, segment, from, to)
      continue
    }
    // A record from an untrusted store could pair genuine chunks in the wrong order: a file
    // rendered whole is also checked against its blob digest, piece by piece in order.
    const check = from === 0 && to === segment.node.size && cas.verify && segment.chunks.length > 1 ? new BlobCheck(segment.node.digest) : undefined
    let chunkStart = 0
    for (const [position, chunk] of segment.chunks.entries()) {
      const chunkEnd = chunkStart + chunk.size
      if (chunkEnd > from && chunkStart < to) {
        const location = chunk.location as NonNullable<ChunkRef['location']>
        const joins =
          run !== undefined &&
          Buffer.compare(run.pack, location.pack) === 0 &&
          location.offset >= run.end &&
          location.offset - run.end <= plan.gapBytes &&
          location.offset + chunk.size - run.start <= plan.maxRunBytes
        let first = false
        if (!joins) {
          yield* closeRun()
          run = new PackRun(cas, location.pack, location.offset, location.offset)
          first = true
        }
        const current = run as PackRun
        const at = location.offset - current.start
        current.chunks.push({ digest: chunk.digest, size: chunk.size, at })
        current.end = location.offset + chunk.size
        const sliceFrom = at + Math.max(from, chunkStart) - chunkStart
        const sliceTo = at + Math.min(to, chunkEnd) - chunkStart
        const read = async (signal: AbortSignal): Promise<Uint8Array> => (await current.read(signal)).subarray(sliceFrom, sliceTo)
        const fetch = check ? check.wrap(read, position === segment.chunks.length - 1) : read
        // The first piece starts the read and holds the run's bytes in the window; its size
        // is read once the run is closed, which is before any of its jobs is handed out.
        waiting.push(first ? { get size() { return current.end - current.start }, fetch } : { size: 0, fetch })
      }
      chunkStart = chunkEnd
    }
  }
  yield* closeRun()
}

/** Hashes a file's pieces in order as they arrive (in any order), and fails the last if the blob digest differs. */
class BlobCheck {
  private readonly hasher = new DigestStream()
  private previous: Promise<void> = Promise.resolve()

  constructor(private readonly digest: Uint8Array) {}

  wrap(read: (signal: AbortSignal) => Promise<Uint8Array>, last: boolean): (signal: AbortSignal) => Promise<Uint8Array> {
    const previous = this.previous
    let done = (): void => undefined
    this.previous = new Promise<void>((resolve) => (done = resolve))
    return async (signal) => {
      try {
        const bytes = await read(signal)
        await previous
        this.hasher.update(bytes)
        if (last && !digestsEqual(this.hasher.digest(), this.digest)) {
          throw new NixcasError('CORRUPT_OBJECT', `blob ${digestHex(this.digest)} does not match its digest`)
        }
        return bytes
      } finally {
        done()
      }
    }
  }
}

/** Jobs for a file whose chunks are objects of their own (stores from before data packs). */
function* objectJobs(cas: Cas, segment: Extract<Segment, { kind: 'file' }>, from: number, to: number): Generator<FetchJob> {
  const whole = from === 0 && to === segment.node.size
  const check = whole && cas.verify && segment.chunks.length > 1 ? new DigestStream() : undefined
  // Chunks arrive in any order; each waits for its predecessor before it is hashed.
  let hashed: Promise<void> = Promise.resolve()
  let chunkStart = 0
  for (let position = 0; position < segment.chunks.length; position++) {
    const chunk = segment.chunks[position] as ChunkRef
    const chunkEnd = chunkStart + chunk.size
    if (chunkEnd > from && chunkStart < to) {
      const sliceFrom = Math.max(from, chunkStart) - chunkStart
      const sliceTo = Math.min(to, chunkEnd) - chunkStart
      const last = position === segment.chunks.length - 1
      const previous = hashed
      let done = (): void => undefined
      hashed = new Promise<void>((resolve) => (done = resolve))
      yield {
        size: chunk.size,
        fetch: async (signal) => {
          try {
            const bytes = await cas.getChunk(chunk.digest, chunk.size, signal)
            if (check) {
              await previous
              check.update(bytes)
              if (last && !digestsEqual(check.digest(), segment.node.digest)) {
                throw new NixcasError('CORRUPT_OBJECT', `blob ${digestHex(segment.node.digest)} does not match its digest`)
              }
            }
            return bytes.subarray(sliceFrom, sliceTo)
          } finally {
            done()
          }
        },
      }
    }
    chunkStart = chunkEnd
  }
}

/** Below this, pieces are gathered before they are handed on: one write per small file is costly. */
const COALESCE_BYTES = 64 * 1024

/** Joins runs of small pieces (framing, small files) into blocks of about COALESCE_BYTES. */
async function* coalesce(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  let pending: Uint8Array[] = []
  let pendingBytes = 0
  for await (const piece of source) {
    if (pendingBytes === 0 && piece.length >= COALESCE_BYTES) {
      yield piece
      continue
    }
    pending.push(piece)
    pendingBytes += piece.length
    if (pendingBytes >= COALESCE_BYTES) {
      yield Buffer.concat(pending, pendingBytes)
      pending = []
      pendingBytes = 0
    }
  }
  if (pendingBytes > 0) yield Buffer.concat(pending, pendingBytes)
}

/** Streams bytes `range` (default: all) of the NAR laid out in `layout`. */
export function renderNar(cas: Cas, layout: Layout, range: NarRange = { start: 0, end: layout.size }, options: RenderOptions = {}): AsyncGenerator<Uint8Array> {
  if (range.start < 0 || range.end > layout.size || range.start > range.end) {
    throw new NixcasError('BAD_RANGE', `range ${range.start}-${range.end} is outside the NAR of ${layout.size} bytes`)
  }
  const defaults = RENDER_DEFAULTS[cas.store.locality]
  return coalesce(prefetch(jobsFor(cas, layout, range, options.plan ?? defaults.plan), {
    windowBytes: options.windowBytes ?? defaults.windowBytes,
    maxRequests: options.maxRequests ?? defaults.maxRequests,
    signal: options.signal,
    stats: options.stats,
    budget: options.budget,
  }))
}

import type { ByteBudget } from '../budget.ts'
import { NixcasError } from '../errors.ts'
import { DigestStream, digestHex, digestsEqual } from '../castore/digest.ts'
import type { ChunkRef } from '../castore/manifest.ts'
import type { Cas } from '../cas/cas.ts'
import { segmentAt, type Layout, type Segment } from './layout.ts'
import { prefetch, type FetchJob, type PrefetchStats } from './prefetcher.ts'

export interface RenderOptions {
  /** Bytes fetched ahead of the client (W). */
  windowBytes?: number
  /** Chunk requests in flight at once (C). */
  maxRequests?: number
  signal?: AbortSignal
  stats?: PrefetchStats
  /** Shared by every NAR response at once. */
  budget?: ByteBudget
}

export const DEFAULT_WINDOW_BYTES = 16 * 1024 * 1024
export const DEFAULT_MAX_REQUESTS = 32

/** A byte range of the NAR, end exclusive. */
export interface NarRange {
  start: number
  end: number
}

const literal = (bytes: Uint8Array): FetchJob => ({ size: 0, fetch: () => Promise.resolve(bytes) })

/**
 * Every fetch the range needs, in order: literal framing, and slices of chunks. A file
 * rendered whole from an untrusted store is also checked against its blob digest as it
 * passes, since a manifest itself carries no digest.
 */
function* jobsFor(cas: Cas, layout: Layout, range: NarRange): Generator<FetchJob> {
  if (range.start >= range.end) return
  for (let index = segmentAt(layout, range.start); index < layout.segments.length; index++) {
    const segment = layout.segments[index] as Segment
    if (segment.offset >= range.end) return
    const from = Math.max(range.start, segment.offset) - segment.offset
    if (segment.kind === 'bytes') {
      const to = Math.min(range.end, segment.offset + segment.bytes.length) - segment.offset
      yield literal(segment.bytes.subarray(from, to))
      continue
    }
    const to = Math.min(range.end, segment.offset + segment.node.size) - segment.offset
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
  return coalesce(prefetch(jobsFor(cas, layout, range), {
    windowBytes: options.windowBytes ?? DEFAULT_WINDOW_BYTES,
    maxRequests: options.maxRequests ?? DEFAULT_MAX_REQUESTS,
    signal: options.signal,
    stats: options.stats,
    budget: options.budget,
  }))
}

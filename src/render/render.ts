import { NixcasError } from '../errors.ts'
import type { Cas } from '../cas/cas.ts'
import type { ByteBudget } from '../budget.ts'
import type { Locality } from '../stores/store.ts'
import type { BufferPool } from '../buffer-pool.ts'
import type { Layout } from './layout.ts'
import { PackRun, planBatches, type Batch, type NarRange, type ReadPlan, type Retention } from './plan.ts'
import { prefetch, PrefetchStats, type FetchJob } from './prefetcher.ts'

export type { NarRange, ReadPlan } from './plan.ts'

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
  /**
   * Buffers to read into and write out of. With a pool, every piece handed on is a view of
   * a pool buffer (an output block, or a read's buffer shared with the piece), which the
   * consumer gives back (`pool.give`) once the piece is written; a read's buffer is free
   * again once its pieces are all given back.
   */
  pool?: BufferPool
}

const MiB = 1024 * 1024
/**
 * Small pieces (framing, small files) are copied into blocks of this size: one write per
 * small file is costly. Also the size of every pooled buffer up to it (BufferPool), and of
 * the longest read from a local disk, so that one size of buffer serves every use there.
 * 512 KiB against 256 KiB: a tenth less CPU per byte served, for ~10 MiB more under 32
 * downloads (bench/README.md).
 */
export const BLOCK_BYTES = 512 * 1024
/**
 * Defaults by where the bytes are (`npm run bench -- shootout`): a local disk answers in
 * microseconds, so a few reads of a block each ahead keep up with the socket; a remote store
 * answers in tens of milliseconds, so more and longer reads must be in flight, and reading
 * through a small gap is cheaper than another request.
 */
export const RENDER_DEFAULTS: Record<Locality, { windowBytes: number; maxRequests: number; plan: ReadPlan }> = {
  local: { windowBytes: 2 * MiB, maxRequests: 4, plan: { maxRunBytes: BLOCK_BYTES, gapBytes: 64 * 1024 } },
  remote: { windowBytes: 64 * MiB, maxRequests: 16, plan: { maxRunBytes: 8 * MiB, gapBytes: MiB } },
}

/** The share of the window (W) that may hold copies of chunks the NAR uses again; the rest is for reads. */
const RETAIN_SHARE = 0.25
/** A piece at least this large goes out as it is, a view of its read, without a copy. */
const DIRECT_BYTES = 64 * 1024

/** Retained copies of one render, counted in its window and in the shared budget. */
class RenderRetention implements Retention {
  private held = 0

  constructor(
    readonly capacity: number,
    private readonly stats: PrefetchStats,
    private readonly budget: ByteBudget | undefined,
  ) {}

  reserve(size: number): boolean {
    if (this.held + size > this.capacity || this.budget?.tryAcquire(size, false) === false) return false
    this.held += size
    this.stats.buffered += size
    this.stats.peakBuffered = Math.max(this.stats.peakBuffered, this.stats.buffered)
    return true
  }

  release(size: number): void {
    this.held -= size
    this.stats.buffered -= size
    this.budget?.release(size)
  }

  releaseAll(): void {
    this.release(this.held)
  }
}

/**
 * Each batch as a job: its read (if any) is what holds room in the window, counted as the
 * memory it holds (a pool buffer of a few KiB of chunks is still a whole block), so that a
 * NAR of many small reads cannot queue up blocks far beyond its window.
 */
function* jobsOf(cas: Cas, batches: Iterable<Batch>, pool: BufferPool | undefined): Generator<FetchJob<Batch>> {
  for (const batch of batches) {
    const read = batch.read
    if (read === undefined) yield { size: 0, fetch: () => Promise.resolve(batch) }
    else if (read instanceof PackRun) yield { size: pool ? pool.capacityOf(read.size) : read.size, fetch: async (signal) => (await read.fetch(cas, signal, pool), batch) }
    else yield { size: read.size, fetch: async (signal) => (await read.fetch(cas, signal), batch) }
  }
}

/**
 * The pieces of each batch, in order, as output: small ones copied into blocks of
 * BLOCK_BYTES, large ones as views of their reads, not copied (with a pool, each such view
 * is one more user of its read's buffer, which goes back once the consumer gave every view
 * back). Retained copies are made when their first piece goes by and dropped after their
 * last; a blob check fails before the last piece of a bad file is handed on.
 */
async function* assemble(batches: AsyncIterable<Batch>, retention: RenderRetention, pool: BufferPool | undefined): AsyncGenerator<Uint8Array> {
  const newBlock = (): Buffer => (pool ? pool.take(BLOCK_BYTES) : Buffer.allocUnsafe(BLOCK_BYTES))
  let block: Buffer | undefined
  let filled = 0
  try {
    for await (const batch of batches) {
      for (const piece of batch.pieces) {
        let bytes: Uint8Array
        if (piece.kind === 'bytes') bytes = piece.bytes
        else {
          const source = piece.source.bytes as Buffer
          if (piece.retain) {
            // Held until its last use, of any size: a buffer of its own, not a pool block.
            const at = piece.retainAt as number
            const copy = Buffer.allocUnsafe(piece.retain.size)
            source.copy(copy, 0, at, at + piece.retain.size)
            piece.retain.bytes = copy
          }
          bytes = source.subarray(piece.start, piece.end)
          piece.check?.update(bytes, piece.last === true)
        }
        const release = piece.kind === 'chunk' ? piece.release : undefined
        if (release) {
          // Dropped once its last piece is handed on (copied into a block, or a view of it).
          release.bytes = undefined
          retention.release(release.size)
        }
        if (bytes.length >= DIRECT_BYTES) {
          if (block && filled > 0) {
            const partial = block.subarray(0, filled)
            block = undefined
            filled = 0
            yield partial
          }
          pool?.share(bytes)
          yield bytes
          continue
        }
        for (let at = 0; at < bytes.length; ) {
          block ??= newBlock()
          const count = Math.min(bytes.length - at, BLOCK_BYTES - filled)
          block.set(count === bytes.length ? bytes : bytes.subarray(at, at + count), filled)
          filled += count
          at += count
          if (filled === BLOCK_BYTES) {
            const full = block
            block = undefined
            filled = 0
            yield full
          }
        }
      }
      if (pool && batch.read?.bytes) {
        pool.give(batch.read.bytes)
        batch.read.bytes = undefined
      }
    }
    if (block && filled > 0) {
      const last = block.subarray(0, filled)
      block = undefined
      yield last
    }
  } finally {
    if (block && pool) pool.give(block)
    retention.releaseAll()
  }
}

/** Streams bytes `range` (default: all) of the NAR laid out in `layout`. */
export function renderNar(cas: Cas, layout: Layout, range: NarRange = { start: 0, end: layout.size }, options: RenderOptions = {}): AsyncGenerator<Uint8Array> {
  if (range.start < 0 || range.end > layout.size || range.start > range.end) {
    throw new NixcasError('BAD_RANGE', `range ${range.start}-${range.end} is outside the NAR of ${layout.size} bytes`)
  }
  const defaults = RENDER_DEFAULTS[cas.store.locality]
  const windowBytes = options.windowBytes ?? defaults.windowBytes
  const stats = options.stats ?? new PrefetchStats()
  const retention = new RenderRetention(Math.floor(windowBytes * RETAIN_SHARE), stats, options.budget)
  const batches = planBatches(layout, range, options.plan ?? defaults.plan, retention, cas.verify)
  return assemble(prefetch(jobsOf(cas, batches, options.pool), {
    windowBytes: windowBytes - retention.capacity,
    maxRequests: options.maxRequests ?? defaults.maxRequests,
    signal: options.signal,
    stats,
    budget: options.budget,
  }), retention, options.pool)
}

import { LRUCache } from 'lru-cache'
import { ByteBudget } from '../budget.ts'
import type { Cas } from '../cas/cas.ts'
import type { NarRecord } from '../castore/nar-record.ts'
import type { NixHash } from '../nix/hash.ts'
import { decodeNixbase32 } from '../nix/nixbase32.ts'
import { treeOf } from '../render/load.ts'
import { layoutNar, type Layout } from '../render/layout.ts'
import type { PrefetchStats } from '../render/prefetcher.ts'
import { BufferPool } from '../buffer-pool.ts'
import { BLOCK_BYTES, renderNar, type NarRange, type RenderOptions } from '../render/render.ts'
import { SharedWork } from '../shared-work.ts'

/** A sha256 in nixbase32: how NARs are named. */
export const NAR_HASH = /^[0-9a-df-np-sv-z]{52}$/

/** NAR layouts kept in memory, counted in segments (about two per file). */
const LAYOUT_CACHE_SEGMENTS = 250_000

export interface NarServiceOptions {
  /** Bytes fetched ahead of one client (W); chosen by the store's locality when unset. */
  windowBytes?: number
  /** Store requests in flight for one client (C); chosen by the store's locality when unset. */
  maxRequests?: number
  /** Bounds the windows of every response together. */
  budget: ByteBudget
  stats: PrefetchStats
  /** Memory for whole NARs kept as sent (see `cachedNar`); 0 keeps none. */
  wholeNarCacheBytes?: number
}

/** A NAR the cache can serve: its tree laid out, its hash and size known. */
export interface ServableNar {
  narHash: NixHash
  /** The hash in nixbase32, as NAR URLs name it. */
  name: string
  layout: Layout
}

/** A whole NAR is kept only if it takes at most this share of `wholeNarCacheBytes`. */
const WHOLE_NAR_SHARE = 32

/**
 * NARs by hash: lookups (one small read for a HEAD), layouts (cached: NARs are immutable),
 * and rendering with the window, request limit and shared byte budget of the server.
 */
export class NarService {
  private readonly layouts = new LRUCache<string, ServableNar>({
    maxSize: LAYOUT_CACHE_SEGMENTS,
    maxEntrySize: LAYOUT_CACHE_SEGMENTS,
    sizeCalculation: (nar) => nar.layout.segments.length + 1,
  })

  /** Layouts being loaded, shared by the requests that wait for them. */
  private readonly loads = new SharedWork<string, ServableNar | undefined>()

  /** Read and output buffers of every response, reused: as much may wait free as the windows may hold. */
  private readonly pool: BufferPool

  /**
   * Small NARs as sent, by name. Most NARs of a closure are small (of the 325 paths of the
   * benchmark's closure 223 are under 100 kB), and rendering one costs a few hops through
   * libuv's thread pool however few its bytes: ~0.3-0.7 ms where nginx sends a file in 0.1.
   * Short-lived, as narinfos are, so a NAR deleted through another replica soon goes.
   */
  private readonly wholes: LRUCache<string, Buffer> | undefined
  private readonly wholeLimit: number
  /** Copies being made, by name: one per NAR, and all together within `wholeNarCacheBytes`. */
  private readonly copying = new Set<string>()
  private readonly copyBudget: ByteBudget

  constructor(
    readonly cas: Cas,
    private readonly options: NarServiceOptions,
  ) {
    this.pool = new BufferPool(options.budget.capacity, { blockBytes: BLOCK_BYTES })
    const wholeBytes = options.wholeNarCacheBytes ?? 0
    this.wholeLimit = Math.floor(wholeBytes / WHOLE_NAR_SHARE)
    this.wholes = this.wholeLimit > 0 ? new LRUCache({ maxSize: wholeBytes, maxEntrySize: this.wholeLimit, sizeCalculation: (bytes) => bytes.length, ttl: 60_000 }) : undefined
    this.copyBudget = new ByteBudget(wholeBytes)
  }

  /** The whole NAR named `narHashBase32` if it is in memory: served with no store read. */
  cachedNar(narHashBase32: string): Buffer | undefined {
    return this.wholes?.get(narHashBase32)
  }

  /** What the index knows of the NAR whose sha256 is `narHashBase32`: one small read. */
  async entry(narHashBase32: string): Promise<{ narHash: NixHash; entry: NarRecord } | undefined> {
    if (!NAR_HASH.test(narHashBase32)) return undefined
    const narHash: NixHash = { algorithm: 'sha256', digest: decodeNixbase32(narHashBase32, 32) }
    const entry = await this.cas.getNarRecord(narHash)
    return entry && { narHash, entry }
  }

  /**
   * The NAR whose sha256 is `narHashBase32`, laid out and ready to render; undefined if
   * unknown. Requests that arrive together for a NAR not laid out yet share one load: each
   * made its own copy of the layout before (32 clients of a 4,000-file NAR held 32 copies).
   */
  async find(narHashBase32: string, signal?: AbortSignal): Promise<ServableNar | undefined> {
    return this.layouts.get(narHashBase32) ?? this.loads.run(narHashBase32, (shared) => this.load(narHashBase32, shared), signal)
  }

  private async load(narHashBase32: string, signal: AbortSignal): Promise<ServableNar | undefined> {
    const found = await this.entry(narHashBase32)
    if (found === undefined) return undefined
    const tree = await treeOf(this.cas, found.entry, signal)
    const nar = { narHash: found.narHash, name: narHashBase32, layout: layoutNar(found.entry.root, tree) }
    this.layouts.set(narHashBase32, nar)
    return nar
  }

  /** Streams `range` (default: all) of a NAR; stops fetching when `signal` aborts. */
  render(nar: ServableNar, range: NarRange | undefined, signal: AbortSignal): AsyncGenerator<Uint8Array> {
    return renderNar(this.cas, nar.layout, range, this.renderOptions(signal))
  }

  /**
   * The same, in buffers of the service's pool: each piece must be handed to `written` once
   * it is written (and not used after), so serving a NAR makes no garbage. A small NAR
   * rendered whole is also kept whole (`cachedNar`) once its last piece was taken.
   */
  renderPooled(nar: ServableNar, range: NarRange | undefined, signal: AbortSignal): AsyncGenerator<Uint8Array> {
    const pieces = renderNar(this.cas, nar.layout, range, { ...this.renderOptions(signal), pool: this.pool })
    const { size } = nar.layout
    const whole = range === undefined || (range.start === 0 && range.end === size)
    return whole && this.wholes && size <= this.wholeLimit ? this.keepWhole(nar.name, size, pieces, this.wholes) : pieces
  }

  /**
   * Passes `pieces` on, and keeps a copy of them once they were all of the NAR (a client that
   * left keeps nothing). One copy per NAR at a time, and all of them together within the
   * cache's size, however many clients ask at once; decided when the first piece is asked
   * for, as a generator never started never runs its `finally`.
   */
  private async *keepWhole(name: string, size: number, pieces: AsyncGenerator<Uint8Array>, wholes: LRUCache<string, Buffer>): AsyncGenerator<Uint8Array> {
    if (this.copying.has(name) || wholes.has(name) || !this.copyBudget.tryAcquire(size, false)) {
      yield* pieces
      return
    }
    this.copying.add(name)
    try {
      // Its own memory: a slice of Node's shared 8 KiB slabs would keep the whole slab.
      const copy = Buffer.allocUnsafeSlow(size)
      let at = 0
      for await (const piece of pieces) {
        if (at + piece.length <= size) copy.set(piece, at)
        at += piece.length
        yield piece
      }
      if (at === size) wholes.set(name, copy)
    } finally {
      this.copying.delete(name)
      this.copyBudget.release(size)
    }
  }

  /** Bytes of pool buffers waiting free to be reused. */
  get poolFreeBytes(): number {
    return this.pool.freeSize
  }

  /** Gives back a piece of `renderPooled`. */
  readonly written = (piece: Uint8Array): void => this.pool.give(piece)

  private renderOptions(signal: AbortSignal): RenderOptions {
    return {
      windowBytes: this.options.windowBytes,
      maxRequests: this.options.maxRequests,
      signal,
      stats: this.options.stats,
      budget: this.options.budget,
    }
  }
}

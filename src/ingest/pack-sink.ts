import type { ByteBudget } from '../budget.ts'
import type { Cas } from '../cas/cas.ts'
import type { BufferPool } from '../buffer-pool.ts'
import { PackBuilder, packBufferBytes } from '../castore/data-pack.ts'
import type { Digest } from '../castore/digest.ts'
import { UploadPool } from './upload-pool.ts'

/** Room the first pack of an ingest starts with. */
const FIRST_PACK_BYTES = 256 * 1024

export interface PackSinkOptions {
  /** A pack is sealed and uploaded once it holds this many bytes. */
  packSize: number
  /** Bytes this ingest holds at once: the pack being filled plus packs being uploaded. */
  maxBytesHeld: number
  maxUploads: number
  /** Shared by every ingest. */
  budget?: ByteBudget
  signal?: AbortSignal
  /**
   * Full-size pack buffers shared by every ingest (blocks of `packBufferBytes(packSize)`):
   * a pack filled in memory written before costs no page faults, which cost more than the
   * copy into it.
   */
  buffers?: BufferPool
}

/**
 * Where an ingest's new chunks go: filled into packs in arrival (NAR) order, so a NAR's
 * chunks sit together and a reader fetches runs of them with one ranged read. Every byte
 * held (filling or uploading) is inside the ingest's own limit and the shared budget, and
 * `add` waits for room: back-pressure reaches the request body instead of memory growing.
 */
export class PackSink {
  /** The record's pack table: a digest once sealed, undefined while filling. */
  readonly packs: (Digest | undefined)[] = []
  private builder: PackBuilder | undefined
  /** The pool buffer the builder fills, if it came from the pool. */
  private pooled: Buffer | undefined
  private held = 0
  private readonly pool: UploadPool
  private readonly roomWaiters: (() => void)[] = []

  constructor(
    private readonly cas: Cas,
    private readonly options: PackSinkOptions,
  ) {
    this.pool = new UploadPool(Number.MAX_SAFE_INTEGER, options.maxUploads, options.signal)
  }

  /** Stores a chunk in this ingest's current pack; returns its pack index and offset. */
  async add(digest: Digest, bytes: Uint8Array): Promise<{ pack: number; offset: number }> {
    const { packSize, maxBytesHeld, budget, signal } = this.options
    if (this.builder && this.builder.size + bytes.length > packSize) await this.seal()
    // Out of room: what is filling goes out now (only uploads ever give room back), then wait.
    if (this.held > 0 && this.held + bytes.length > maxBytesHeld) {
      await this.seal()
      while (this.held > 0 && this.held + bytes.length > maxBytesHeld) {
        await new Promise<void>((resolve) => this.roomWaiters.push(resolve))
        signal?.throwIfAborted()
      }
    }
    if (budget && !budget.tryAcquire(bytes.length, this.held === 0)) {
      await this.seal()
      await budget.acquire(bytes.length, this.held === 0, signal)
    }
    this.held += bytes.length
    if (!this.builder) {
      // The first pack starts small (most NARs are a few KiB: a large buffer for each made
      // garbage at the rate NARs arrived) and doubles as it fills, unless a full-size pack
      // buffer waits free in the pool; once a pack was sealed full the NAR is large, and the
      // next takes a full-size buffer at once instead of growing again.
      const full = packBufferBytes(packSize)
      const buffers = this.options.buffers
      this.pooled = buffers && (this.packs.length > 0 ? buffers.take(full) : buffers.takeFree(full))
      this.builder = this.pooled ? new PackBuilder(packSize, this.pooled) : new PackBuilder(this.packs.length > 0 ? packSize : Math.min(packSize, FIRST_PACK_BYTES))
      this.packs.push(undefined)
    }
    return { pack: this.packs.length - 1, offset: this.builder.add(digest, bytes) }
  }

  private async seal(): Promise<void> {
    const builder = this.builder
    if (!builder || builder.count === 0) return
    const pooled = this.pooled
    this.builder = undefined
    this.pooled = undefined
    const index = this.packs.length - 1
    const chunkBytes = builder.size
    const { digest, bytes } = builder.seal()
    this.packs[index] = digest
    await this.pool.add(bytes.length, async (signal) => {
      try {
        await this.cas.putDataPack(digest, bytes, signal)
      } finally {
        // Stores keep no reference to what they were given once a put settled.
        if (pooled) this.options.buffers?.give(pooled)
        this.held -= chunkBytes
        this.options.budget?.release(chunkBytes)
        for (const wake of this.roomWaiters.splice(0)) wake()
      }
    })
  }

  /** Seals the last pack and waits until every pack is stored; throws the first failure. */
  async finish(): Promise<Digest[]> {
    await this.seal()
    await this.pool.drain()
    return this.packs.map((digest) => digest as Digest)
  }

  /** Stops uploading (the ingest failed) and releases what it holds. */
  async abort(reason: unknown): Promise<void> {
    const builder = this.builder
    this.builder = undefined
    if (this.pooled) this.options.buffers?.give(this.pooled)
    this.pooled = undefined
    if (builder) {
      this.held -= builder.size
      this.options.budget?.release(builder.size)
    }
    for (const wake of this.roomWaiters.splice(0)) wake()
    await this.pool.abort(reason)
  }
}

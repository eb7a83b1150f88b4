/**
 * Large buffers reused instead of allocated afresh: the reads and output blocks of NAR
 * responses, the data packs an ingest fills. Two costs made them worth keeping. Garbage: at
 * the rate bytes are served, the collector let hundreds of MB of dropped buffers pile up
 * under 32 concurrent downloads. And first touch: writing into fresh memory faults in every
 * page, which on these machines cost more than the copy itself (80 MiB copied in 16 KiB
 * parts: 2-4 ms into a buffer used before, 50-220 ms into fresh ones). Each buffer has an
 * ArrayBuffer of its own, so a view given back finds its buffer.
 *
 * Every take up to `blockBytes` gets a buffer of exactly that capacity: one size, so a free
 * buffer always fits the next take (on a local disk, reads and output blocks are all within
 * it). Larger takes (reads of MiBs from a remote store) get the power of two above. Free
 * buffers of several sizes had sat unused beside new ones of another size: under 32
 * downloads the free pool held 80–120 MiB while new buffers were made.
 *
 * A buffer may go out as several views at once (`share`: a read whose pieces are written to
 * a socket as they are); it is free again once each view has been given back, exactly once.
 * At most `maxFreeBytes` wait in the pool; past that, given buffers are left to the
 * collector. A pool nobody took from for `idleMs` lets its free buffers go, so a burst of
 * work does not hold its peak for good.
 */
export class BufferPool {
  private readonly free = new Map<number, ArrayBuffer[]>()
  /** Views out of each buffer in use; buffers that are free or that this pool did not make have no entry. */
  private readonly users = new WeakMap<ArrayBuffer, number>()
  private freeBytes = 0
  private takenSinceTick = false
  /** The largest capacity made so far. */
  private largest = 0
  private readonly blockBytes: number

  constructor(
    private readonly maxFreeBytes: number,
    options: { blockBytes?: number; idleMs?: number } = {},
  ) {
    this.blockBytes = options.blockBytes ?? 64 * 1024
    // The timer holds the pool weakly: a pool nobody uses any more is collected, and its timer stops.
    const pool = new WeakRef(this)
    const timer = setInterval(() => {
      const alive = pool.deref()
      if (alive) alive.tick()
      else clearInterval(timer)
    }, options.idleMs ?? 30_000).unref()
  }

  private tick(): void {
    if (!this.takenSinceTick) this.trim()
    this.takenSinceTick = false
  }

  /** Bytes of the buffers waiting free. */
  get freeSize(): number {
    return this.freeBytes
  }

  /** Lets every free buffer go to the collector. */
  trim(): void {
    this.free.clear()
    this.freeBytes = 0
  }

  /** The bytes a take of `size` holds: what a window that counts memory must count for it. */
  capacityOf(size: number): number {
    return size <= this.blockBytes ? this.blockBytes : 2 ** Math.ceil(Math.log2(size))
  }

  /** A buffer of `size` bytes, uninitialised, with one user: a view of an ArrayBuffer of its own. */
  take(size: number): Buffer {
    const reused = this.takeFree(size)
    if (reused !== undefined) return reused
    const capacity = this.capacityOf(size)
    const made = Buffer.allocUnsafeSlow(capacity)
    this.users.set(made.buffer, 1)
    this.largest = Math.max(this.largest, capacity)
    return made.subarray(0, size)
  }

  /** Like `take`, but only a buffer waiting free (of the size, or larger): undefined when there is none. */
  takeFree(size: number): Buffer | undefined {
    this.takenSinceTick = true
    const capacity = this.capacityOf(size)
    let reused = this.free.get(capacity)?.pop()
    // A larger free buffer would otherwise wait unused while a new one is made.
    for (let larger = capacity * 2; reused === undefined && larger <= this.largest; larger *= 2) reused = this.free.get(larger)?.pop()
    if (reused === undefined) return undefined
    this.freeBytes -= reused.byteLength
    this.users.set(reused, 1)
    return Buffer.from(reused, 0, size)
  }

  /** One more user of the buffer `view` is part of (another view handed on); ignored for buffers it did not make. */
  share(view: Uint8Array): void {
    const count = this.users.get(view.buffer as ArrayBuffer)
    if (count !== undefined) this.users.set(view.buffer as ArrayBuffer, count + 1)
  }

  /**
   * Gives back a view of a buffer from `take` (the buffer itself, or one shared): once each
   * user has given its view back, the buffer is free and must not be used after. A buffer
   * this pool did not make, or one already free, is ignored.
   */
  give(view: Uint8Array): void {
    const buffer = view.buffer
    if (!(buffer instanceof ArrayBuffer)) return
    const count = this.users.get(buffer)
    if (count === undefined) return
    if (count > 1) {
      this.users.set(buffer, count - 1)
      return
    }
    this.users.delete(buffer)
    if (this.freeBytes + buffer.byteLength > this.maxFreeBytes) return
    let list = this.free.get(buffer.byteLength)
    if (list === undefined) this.free.set(buffer.byteLength, (list = []))
    list.push(buffer)
    this.freeBytes += buffer.byteLength
  }
}

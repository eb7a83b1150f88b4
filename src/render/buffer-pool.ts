/**
 * Buffers that NAR responses reuse: the reads of data packs and the blocks written to
 * sockets. Allocating them afresh made garbage at the rate bytes were served, and the
 * collector let hundreds of MB of it pile up under 32 concurrent downloads; a buffer given
 * back is handed out again instead. Each buffer has an ArrayBuffer of its own, so a view
 * given back finds its buffer. At most `maxFreeBytes` wait in the pool; past that, given
 * buffers are left to the collector. A pool nobody took from for `idleMs` lets its free
 * buffers go, so a burst of downloads does not hold its peak for good.
 */
const MIN_CAPACITY = 64 * 1024

export class BufferPool {
  private readonly free = new Map<number, ArrayBuffer[]>()
  /** Buffers this pool made (anything else given back is ignored), and those free now (given twice is once). */
  private readonly made = new WeakSet<ArrayBuffer>()
  private readonly waiting = new WeakSet<ArrayBuffer>()
  private freeBytes = 0
  private takenSinceTick = false
  /** The largest capacity made so far. */
  private largest = 0

  constructor(
    private readonly maxFreeBytes: number,
    idleMs = 30_000,
  ) {
    // The timer holds the pool weakly: a pool nobody uses any more is collected, and its timer stops.
    const pool = new WeakRef(this)
    const timer = setInterval(() => {
      const alive = pool.deref()
      if (alive) alive.tick()
      else clearInterval(timer)
    }, idleMs).unref()
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

  /**
   * A buffer of `size` bytes, uninitialised: a view of an ArrayBuffer of its own, of a size
   * rounded up to a power of two (a free larger one serves when none of that size is free).
   * Below half the smallest capacity, a buffer of exactly `size` that is not pooled: a
   * small chunk held for later (a NAR repeats many small files) must not hold 64 KiB.
   */
  take(size: number): Buffer {
    if (size < MIN_CAPACITY / 2) return Buffer.allocUnsafe(size)
    this.takenSinceTick = true
    const capacity = 2 ** Math.ceil(Math.log2(size))
    let reused = this.free.get(capacity)?.pop()
    // A larger free buffer would otherwise wait unused while a new one is made.
    for (let larger = capacity * 2; reused === undefined && larger <= this.largest; larger *= 2) reused = this.free.get(larger)?.pop()
    if (reused !== undefined) {
      this.freeBytes -= reused.byteLength
      this.waiting.delete(reused)
      return Buffer.from(reused, 0, size)
    }
    const made = Buffer.allocUnsafeSlow(capacity)
    this.made.add(made.buffer)
    this.largest = Math.max(this.largest, capacity)
    return made.subarray(0, size)
  }

  /** Gives back a buffer from `take` (or a view of one); it must not be used after. */
  give(bytes: Uint8Array): void {
    const buffer = bytes.buffer
    if (!(buffer instanceof ArrayBuffer) || !this.made.has(buffer) || this.waiting.has(buffer)) return
    if (this.freeBytes + buffer.byteLength > this.maxFreeBytes) return
    let list = this.free.get(buffer.byteLength)
    if (list === undefined) this.free.set(buffer.byteLength, (list = []))
    list.push(buffer)
    this.waiting.add(buffer)
    this.freeBytes += buffer.byteLength
  }
}

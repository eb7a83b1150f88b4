/**
 * A byte budget shared by every request of one kind (all uploads, or all NAR windows),
 * so memory stays bounded however many clients there are. Callers reserve before they
 * fetch or upload and release when the bytes are gone. A caller holding nothing may
 * always take one piece, even past the limit: no request can starve, and the overshoot
 * is at most one piece per request.
 */
export class ByteBudget {
  private used = 0
  peak = 0
  private readonly waiters: { size: number; holdingNothing: boolean; wake: () => void }[] = []

  constructor(readonly capacity: number) {}

  get inUse(): number {
    return this.used
  }

  tryAcquire(size: number, holdingNothing: boolean): boolean {
    if (this.used + size > this.capacity && !holdingNothing) return false
    this.used += size
    this.peak = Math.max(this.peak, this.used)
    return true
  }

  /** Waits, first come first served, until `size` fits (or the caller holds nothing). */
  async acquire(size: number, holdingNothing: boolean, signal?: AbortSignal): Promise<void> {
    if (this.waiters.length === 0 && this.tryAcquire(size, holdingNothing)) return
    signal?.throwIfAborted()
    await new Promise<void>((resolve, reject) => {
      const waiter = { size, holdingNothing, wake: resolve }
      this.waiters.push(waiter)
      signal?.addEventListener(
        'abort',
        () => {
          const index = this.waiters.indexOf(waiter)
          if (index < 0) return
          this.waiters.splice(index, 1)
          reject(signal.reason as Error)
        },
        { once: true },
      )
    })
  }

  release(size: number): void {
    this.used -= size
    while (this.waiters.length > 0) {
      const next = this.waiters[0] as (typeof this.waiters)[number]
      if (!this.tryAcquire(next.size, next.holdingNothing)) break
      this.waiters.shift()
      next.wake()
    }
  }
}

/** A budget with no limit, for callers that need none. */
export const unlimited = (): ByteBudget => new ByteBudget(Number.MAX_SAFE_INTEGER)

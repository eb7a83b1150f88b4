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

  release(size: number): void {
    this.used -= size
  }
}

/** A budget with no limit, for callers that need none. */
export const unlimited = (): ByteBudget => new ByteBudget(Number.MAX_SAFE_INTEGER)

import { setMaxListeners } from 'node:events'
import type { ByteBudget } from '../budget.ts'

/**
 * Runs uploads concurrently with a bound on bytes and on requests in flight. `add` waits
 * for room, so a producer that awaits it is held back (back-pressure reaches the source
 * instead of a queue growing). The first failure aborts the rest and is rethrown.
 */
export class UploadPool {
  private bytes = 0
  private count = 0
  private failure: Error | undefined
  private readonly waiters: (() => void)[] = []
  private readonly controller = new AbortController()
  private readonly running = new Set<Promise<void>>()

  constructor(
    private readonly maxBytes: number,
    private readonly maxCount: number,
    outer?: AbortSignal,
    /** Shared by every upload: bounds all of them together. */
    private readonly budget?: ByteBudget,
  ) {
    outer?.addEventListener('abort', () => this.controller.abort(outer.reason), { once: true })
    // One listener per upload in flight: up to maxCount of them, by design.
    setMaxListeners(0, this.controller.signal)
  }

  get signal(): AbortSignal {
    return this.controller.signal
  }

  private hasRoom(size: number): boolean {
    return (
      this.count < this.maxCount &&
      (this.bytes + size <= this.maxBytes || this.count === 0) &&
      this.budget?.tryAcquire(size, this.count === 0) !== false
    )
  }

  private check(): void {
    if (this.failure !== undefined) throw this.failure
    this.controller.signal.throwIfAborted()
  }

  async add(size: number, task: (signal: AbortSignal) => Promise<void>): Promise<void> {
    this.check()
    while (!this.hasRoom(size)) {
      await new Promise<void>((resolve) => this.waiters.push(resolve))
      this.check()
    }
    this.bytes += size
    this.count++
    const run = task(this.controller.signal)
      .catch((error: unknown) => {
        if (this.failure === undefined) {
          this.failure = error instanceof Error ? error : new Error(String(error))
          this.controller.abort(error)
        }
      })
      .finally(() => {
        this.bytes -= size
        this.count--
        this.budget?.release(size)
        this.running.delete(run)
        this.waiters.shift()?.()
      })
    this.running.add(run)
  }

  /** Waits for every upload; throws the first failure. */
  async drain(): Promise<void> {
    while (this.running.size > 0) await Promise.all(this.running)
    this.check()
  }

  /** Stops everything (after a failure elsewhere) and waits until nothing runs. */
  async abort(reason: unknown): Promise<void> {
    this.controller.abort(reason)
    for (const wake of this.waiters.splice(0)) wake()
    while (this.running.size > 0) await Promise.all(this.running)
  }
}

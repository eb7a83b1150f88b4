/**
 * A session's input in the worker: the body's chunks as they arrive from the main thread,
 * read by the decoder as an async iterable. The main thread bounds what it sends ahead by
 * what the decoder has taken (`taken`), so the queue itself needs no limit.
 */
export class InputQueue implements AsyncIterable<Uint8Array> {
  private readonly chunks: Uint8Array[] = []
  private ended = false
  private failure: Error | undefined
  private wake: (() => void) | undefined
  /** Bytes queued and not yet taken. */
  queued = 0
  /** Bytes taken by the reader since the session opened. */
  taken = 0

  constructor(
    /** Called when the reader has taken bytes (to tell the main thread it may send more). */
    private readonly onTaken: () => void,
    /** Called when the reader waits for bytes: the last chance to hand on what is ready. */
    private readonly onStarved: () => void,
  ) {}

  push(bytes: Uint8Array): void {
    this.chunks.push(bytes)
    this.queued += bytes.length
    this.signal()
  }

  end(): void {
    this.ended = true
    this.signal()
  }

  /** Makes the reader fail at once, dropping what is queued. */
  fail(error: Error): void {
    this.failure ??= error
    this.chunks.length = 0
    this.queued = 0
    this.signal()
  }

  private signal(): void {
    const wake = this.wake
    this.wake = undefined
    wake?.()
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    for (;;) {
      if (this.failure) throw this.failure
      const next = this.chunks.shift()
      if (next) {
        this.queued -= next.length
        this.taken += next.length
        this.onTaken()
        yield next
        continue
      }
      if (this.ended) return
      this.onStarved()
      await new Promise<void>((resolve) => (this.wake = resolve))
    }
  }
}

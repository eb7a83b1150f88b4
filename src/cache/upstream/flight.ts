import type { ByteBudget } from '../../budget.ts'
import { NixcasError } from '../../errors.ts'
import type { NarRange } from '../../render/render.ts'

export interface FlightOptions {
  /** The NAR's size, from its narinfo. */
  size: number
  /** Decoded bytes kept for the readers (at least one piece more is held). */
  windowBytes: number
  /** Where the window's bytes are taken from, shared with every other window. */
  budget: ByteBudget
  /** The decoded NAR from upstream. */
  source(signal: AbortSignal): AsyncIterable<Uint8Array>
  /** Checks and stores what `bytes` yields; resolves once the NAR is a local path. */
  consume(bytes: AsyncIterable<Uint8Array>, signal: AbortSignal): Promise<void>
  /** Renders a range of the NAR once stored: for readers the window has left behind. */
  local(range: NarRange, signal: AbortSignal): AsyncIterable<Uint8Array>
}

/** Resolves on `promise`, or rejects with the signal's reason once it aborts. */
function until<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error)
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error)
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
  })
}

/**
 * One upstream NAR download shared by every client that asks for it (single-flight).
 *
 * The download runs at the pace of the ingest, never of a client: each decoded piece is
 * kept in a window of `windowBytes` (taken from the shared budget) as it goes to the
 * ingest, and every reader reads the window at its own pace from its own offset. The rules:
 *
 * - A reader whose next byte has already left the window (a slow client, a late joiner, a
 *   range far behind) waits until the NAR is stored and is then served from the castore.
 * - The last byte is sent only after the whole NAR checked out (NarHash, NarSize, a valid
 *   NAR): a corrupt upstream NAR ends every response short of its Content-Length, so no
 *   client ever receives it whole, and nothing of it is stored as a path.
 * - A client that leaves does not stop the download while others read it; when the last
 *   reader leaves before the end (its client went away), the download is dropped at once
 *   and nothing of it becomes visible. A reader that got all it asked for (a range) does
 *   not drop it: the download then finishes and the path becomes local, as does one whose
 *   request never read it (answered 304 or 416 once the download had begun).
 */
export class Flight {
  readonly settled: Promise<void>
  /** Resolves once the first bytes arrived (or the NAR was stored); rejects if the download failed before. */
  readonly ready: Promise<void>
  private onReady: () => void = () => undefined
  private readonly controller = new AbortController()
  private pieces: Uint8Array[] = []
  /** NAR offset of `pieces[0]`. */
  private windowStart = 0
  private produced = 0
  private held = 0
  private state: 'running' | 'stored' | 'failed' = 'running'
  private failure: unknown
  private freed = false
  private readers = 0
  private waiters = new Set<() => void>()
  private droppedByReaders = false

  constructor(private readonly options: FlightOptions) {
    const signal = this.controller.signal
    this.ready = new Promise<void>((resolve) => (this.onReady = resolve))
    this.settled = options
      .consume(this.tee(options.source(signal)), signal)
      .then(
        () => {
          this.state = 'stored'
        },
        (error: unknown) => {
          this.state = 'failed'
          this.failure = error
          throw error
        },
      )
      .finally(() => {
        // Whatever still runs upstream (a failure elsewhere) stops now.
        this.controller.abort(new NixcasError('ABORTED', 'the upstream download is over'))
        this.wake()
        this.freeIfIdle()
      })
    // Readers await it; a flight nobody reads must not be an unhandled rejection.
    this.settled.catch(() => undefined)
    this.ready = Promise.race([this.ready, this.settled])
    this.ready.catch(() => undefined)
  }

  /** Whether the download was dropped because its last client went away. */
  get dropped(): boolean {
    return this.droppedByReaders
  }

  /** Stops the download (server shutdown). */
  abort(reason: unknown): void {
    this.controller.abort(reason)
  }

  private async *tee(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    const { budget, windowBytes } = this.options
    for await (const piece of source) {
      // The window's own copy: the ingest may hand its buffers to a worker thread.
      const copy = new Uint8Array(piece)
      await budget.acquire(copy.length, this.held === 0, this.controller.signal)
      this.pieces.push(copy)
      this.produced += copy.length
      this.held += copy.length
      for (let first = this.pieces[0]; first !== undefined && this.held - first.length >= windowBytes; first = this.pieces[0]) {
        this.pieces.shift()
        this.held -= first.length
        this.windowStart += first.length
        budget.release(first.length)
      }
      this.wake()
      this.onReady()
      yield copy
    }
  }

  private wake(): void {
    const waiters = [...this.waiters]
    this.waiters.clear()
    for (const wake of waiters) wake()
  }

  private changed(signal: AbortSignal): Promise<void> {
    return until(new Promise<void>((resolve) => this.waiters.add(resolve)), signal)
  }

  private freeIfIdle(): void {
    if (this.state === 'running' || this.readers > 0 || this.freed) return
    this.freed = true
    this.options.budget.release(this.held)
    this.held = 0
    this.pieces = []
  }

  /** How far readers may read: all that arrived, but the last byte only once the NAR is stored. */
  private readable(): number {
    return this.state === 'stored' ? this.produced : Math.min(this.produced, this.options.size - 1)
  }

  /** The piece of the window holding `offset`, and the piece's own offset. */
  private pieceAt(offset: number): { piece: Uint8Array; at: number } {
    let at = this.windowStart
    for (const piece of this.pieces) {
      if (offset < at + piece.length) return { piece, at }
      at += piece.length
    }
    throw new NixcasError('INTERNAL', `offset ${offset} is not in the window`)
  }

  /** Bytes `range` of the NAR, from the window while it holds them, else from the castore once stored. */
  async *read(range: NarRange, signal: AbortSignal): AsyncGenerator<Uint8Array> {
    this.readers++
    let satisfied = false
    let position = range.start
    try {
      while (position < range.end) {
        if (this.state === 'failed') throw this.failure
        if (position < this.windowStart || this.freed) {
          await until(this.settled, signal)
          yield* this.options.local({ start: position, end: range.end }, signal)
          satisfied = true
          return
        }
        const limit = Math.min(range.end, this.readable())
        if (position >= limit) {
          await this.changed(signal)
          continue
        }
        const { piece, at } = this.pieceAt(position)
        const bytes = piece.subarray(position - at, Math.min(piece.length, limit - at))
        position += bytes.length
        yield bytes
      }
      satisfied = true
    } finally {
      this.readers--
      if (!satisfied && this.readers === 0 && this.state === 'running') {
        this.droppedByReaders = true
        this.controller.abort(new NixcasError('ABORTED', 'every client of the upstream download went away'))
      }
      this.freeIfIdle()
    }
  }
}

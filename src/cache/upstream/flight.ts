import { NixcasError } from '../../errors.ts'
import type { NarRange } from '../../render/render.ts'
import type { Keep } from './keep.ts'

export interface FlightOptions {
  /** The NAR's size, from its narinfo. */
  size: number
  /** Where the downloaded bytes are kept for the readers (a window or a spool file). */
  keep: Keep
  /**
   * The decoded NAR from upstream, checked on the way: after its last piece it ends only
   * if the whole NAR matched its NarHash and NarSize, else it throws.
   */
  source(signal: AbortSignal): AsyncIterable<Uint8Array>
  /**
   * Checks and stores what `bytes` yields; resolves once the NAR is a local path. What it
   * yields is the consumer's to keep (it may move it to another thread): nobody else reads it.
   */
  consume(bytes: AsyncIterable<Uint8Array>, signal: AbortSignal): Promise<void>
  /** Renders a range of the NAR once stored: for readers the window has left behind. */
  local(range: NarRange, signal: AbortSignal): AsyncIterable<Uint8Array>
  /** Told once every byte arrived and matched (before the ingest ends). */
  onDownloaded?: () => void
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
 * With a spool file, the download runs at the upstream's pace into the file, every reader
 * reads it from its own offset at its own pace (late joiners and ranges too), and the
 * ingest reads the file once the download checked out. With a window (no room in the spool), the
 * download goes at the ingest's pace, each piece kept in the window as it goes to the
 * ingest; a reader whose next byte has left the window waits until the NAR is stored and
 * is then served from the castore. The rules, either way:
 *
 * - The last byte is sent only once the download itself matched its NarHash and NarSize
 *   (a sha256 over the decoded bytes as they arrive): a corrupt upstream NAR ends every
 *   response short of its Content-Length, so no client ever receives it whole, and the
 *   ingest, which checks the same, stores nothing of it.
 * - The path becomes local only when the ingest checked it out too; until then a client
 *   that asks is served from the download.
 * - A client that leaves does not stop the download while others read it. When the last
 *   reader leaves before the end while the download still runs (its client went away),
 *   the download is dropped at once and nothing of it becomes visible. Once every byte
 *   arrived, the ingest always finishes. A reader that got all it asked for (a range)
 *   does not drop it, nor does a request that never read it (answered 304 or 416).
 */
export class Flight {
  readonly settled: Promise<void>
  /** Resolves once the first bytes arrived (or the NAR was stored); rejects if the download failed before. */
  readonly ready: Promise<void>
  private readonly controller = new AbortController()
  /** Bytes downloaded and kept. */
  private produced = 0
  /** Every byte arrived and matched. */
  private downloaded = false
  private downloadFailure: { error: unknown } | undefined
  private state: 'running' | 'stored' | 'failed' = 'running'
  private failure: unknown
  private freed = false
  private readers = 0
  private waiters = new Set<() => void>()
  private droppedByReaders = false

  constructor(private readonly options: FlightOptions) {
    const signal = this.controller.signal
    let arrived: () => void = () => undefined
    const firstBytes = new Promise<void>((resolve) => (arrived = resolve))
    const work = options.keep.paced ? options.consume(this.download(signal, arrived), signal) : this.unpaced(signal, arrived)
    this.settled = work
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
    this.ready = Promise.race([firstBytes, this.settled])
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

  /** The upstream's bytes into the keep as they arrive; yields them as kept. */
  private async *download(signal: AbortSignal, arrived: () => void): AsyncGenerator<Uint8Array> {
    try {
      for await (const piece of this.options.source(signal)) {
        const kept = await this.options.keep.add(piece, signal)
        this.produced += piece.length
        this.wake()
        arrived()
        yield kept
      }
      this.downloaded = true
      this.options.onDownloaded?.()
    } catch (error) {
      this.downloadFailure = { error }
      throw error
    } finally {
      this.wake()
    }
  }

  /**
   * The download, then the ingest of the spool file. One after the other: the ingest takes
   * CPU the download and its clients would otherwise lack (the first download then goes at
   * the upstream's pace, which is the point of the spool), and a NAR that did not check out
   * never reaches the store.
   */
  private async unpaced(signal: AbortSignal, arrived: () => void): Promise<void> {
    for await (const piece of this.download(signal, arrived)) void piece
    // The ingest may transfer what it reads to a worker thread: from the file, not the pieces readers share.
    await this.options.keep.flush()
    await this.options.consume(this.everything(), signal)
  }

  /** Every byte downloaded, from the start: what the ingest reads once the download is over. */
  private async *everything(): AsyncGenerator<Uint8Array> {
    for (let position = 0; position < this.produced; ) {
      const bytes = await this.options.keep.read(position, this.produced - position)
      position += bytes.length
      yield bytes
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
    this.options.keep.free().catch(() => undefined)
  }

  /** How far readers may read: all that arrived, but the last byte only once the download matched. */
  private readable(): number {
    return this.downloaded ? this.produced : Math.min(this.produced, this.options.size - 1)
  }

  /** Bytes `range` of the NAR, from the download while it keeps them, else from the castore once stored. */
  async *read(range: NarRange, signal: AbortSignal): AsyncGenerator<Uint8Array> {
    this.readers++
    let satisfied = false
    let position = range.start
    try {
      while (position < range.end) {
        if (this.downloadFailure) throw this.downloadFailure.error
        // A window stops with its ingest; a downloaded spool file still serves if the ingest failed.
        if (this.state === 'failed' && !this.downloaded) throw this.failure
        if (position < this.options.keep.start || this.freed) {
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
        const bytes = await this.options.keep.read(position, limit - position)
        position += bytes.length
        yield bytes
      }
      satisfied = true
    } finally {
      this.readers--
      if (!satisfied && this.readers === 0 && this.state === 'running' && !this.downloaded && !this.downloadFailure) {
        this.droppedByReaders = true
        this.controller.abort(new NixcasError('ABORTED', 'every client of the upstream download went away'))
      }
      this.freeIfIdle()
    }
  }
}

import { NixcasError } from '../errors.ts'

/** No piece a decoder or encoder yields is larger than this. */
export const MAX_PIECE = 1024 * 1024

/** Live byte counts of one decode or encode, for metrics and for proving that work stopped. */
export interface CodecProgress {
  /** Bytes taken from the source. */
  inputBytes: number
  /** Bytes the codec produced (including any it holds before yielding them). */
  outputBytes: number
}

export function newProgress(): CodecProgress {
  return { inputBytes: 0, outputBytes: 0 }
}

/** The signal's reason, thrown as it is (an AbortSignal may be aborted with anything). */
function rejectWithReason(signal: AbortSignal, reject: (reason: unknown) => void): void {
  reject(signal.reason ?? new NixcasError('ABORTED', 'the request was aborted'))
}

/**
 * Reads a source one chunk at a time, and gives up waiting for the next chunk as soon as
 * `signal` aborts: a client that stalls mid-body cannot hold a decode open past its abort.
 */
export class InputReader {
  private readonly iterator: AsyncIterator<Uint8Array>
  private finished = false

  constructor(
    source: AsyncIterable<Uint8Array>,
    private readonly signal: AbortSignal | undefined,
    private readonly progress: CodecProgress,
  ) {
    this.iterator = source[Symbol.asyncIterator]()
  }

  /** The next non-empty chunk, or undefined at the end of the source. */
  async next(): Promise<Uint8Array | undefined> {
    while (!this.finished) {
      this.signal?.throwIfAborted()
      const result = await this.raceAbort(this.iterator.next())
      if (result.done) {
        this.finished = true
        return undefined
      }
      if (result.value.length === 0) continue
      this.progress.inputBytes += result.value.length
      return result.value
    }
    return undefined
  }

  /**
   * Lets the source clean up. Not awaited: a source parked in next() (a silent client) would
   * make return() wait behind it, and the caller must not.
   */
  close(): void {
    if (this.finished) return
    this.finished = true
    this.iterator.return?.().catch(() => undefined)
  }

  private raceAbort<T>(promise: Promise<T>): Promise<T> {
    const signal = this.signal
    if (!signal) return promise
    let onAbort = (): void => undefined
    // Promise.race subscribes to both, so a late abort's rejection is never unhandled.
    const aborted = new Promise<never>((_resolve, reject: (reason: unknown) => void) => {
      onAbort = () => rejectWithReason(signal, reject)
      signal.addEventListener('abort', onAbort, { once: true })
    })
    return Promise.race([promise, aborted]).finally(() => signal.removeEventListener('abort', onAbort))
  }
}

/** Counts output against a limit and fails with TOO_LARGE the moment it is exceeded. */
export class OutputMeter {
  private total = 0

  constructor(
    private readonly maxBytes: number | undefined,
    private readonly what: string,
  ) {}

  add(bytes: number): void {
    this.total += bytes
    if (this.maxBytes !== undefined && this.total > this.maxBytes) {
      throw new NixcasError('TOO_LARGE', `${this.what} is larger than the limit of ${this.maxBytes} bytes`)
    }
  }
}

/** Splits a buffer into pieces of at most MAX_PIECE bytes (views, not copies). */
export function* pieces(bytes: Uint8Array): Generator<Uint8Array> {
  for (let offset = 0; offset < bytes.length; offset += MAX_PIECE) yield bytes.subarray(offset, offset + MAX_PIECE)
}

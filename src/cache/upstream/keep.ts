import type { ByteBudget } from '../../budget.ts'
import { NixcasError } from '../../errors.ts'

/**
 * Where one upstream download keeps its decoded bytes for the clients sharing it: a window
 * in memory (the download then waits for the ingest, which is handed what is kept) or a
 * spool file (the download runs at the upstream's pace and the ingest reads the file).
 */
export interface Keep {
  /** Whether the download goes at the ingest's pace (it consumes what `add` returns). */
  readonly paced: boolean
  /** NAR offset of the first byte still kept. */
  readonly start: number
  /** Keeps the next piece of the NAR, which the caller gives up; resolves to the bytes as kept. */
  add(piece: Uint8Array, signal: AbortSignal): Promise<Uint8Array>
  /** Up to `length` kept bytes from `offset` (at least one); shared with other readers unless flushed. */
  read(offset: number, length: number): Promise<Uint8Array>
  /** Resolves once reads of every byte added return bytes of the reader's own (to change or transfer). */
  flush(): Promise<void>
  /** Gives the room back; nothing is read after. */
  free(): Promise<void>
}

/** The last `windowBytes` of a download in memory (one piece more is held), taken from the shared budget. */
export class Window implements Keep {
  readonly paced = true
  start = 0
  private pieces: Uint8Array[] = []
  private held = 0

  constructor(
    private readonly windowBytes: number,
    private readonly budget: ByteBudget,
  ) {}

  async add(piece: Uint8Array, signal: AbortSignal): Promise<Uint8Array> {
    // The window's own copy: the ingest may hand its buffers to a worker thread.
    const copy = new Uint8Array(piece)
    await this.budget.acquire(copy.length, this.held === 0, signal)
    this.pieces.push(copy)
    this.held += copy.length
    for (let first = this.pieces[0]; first !== undefined && this.held - first.length >= this.windowBytes; first = this.pieces[0]) {
      this.pieces.shift()
      this.held -= first.length
      this.start += first.length
      this.budget.release(first.length)
    }
    return copy
  }

  /** Synchronous in substance: what was checked to be in the window is still there. */
  read(offset: number, length: number): Promise<Uint8Array> {
    let at = this.start
    for (const piece of this.pieces) {
      if (offset < at + piece.length) return Promise.resolve(piece.subarray(offset - at, Math.min(piece.length, offset - at + length)))
      at += piece.length
    }
    return Promise.reject(new NixcasError('INTERNAL', `offset ${offset} is not in the window`))
  }

  /** The window's pieces are shared by its readers for as long as it keeps them. */
  flush(): Promise<void> {
    return Promise.reject(new NixcasError('INTERNAL', 'a window cannot hand out bytes of their own'))
  }

  free(): Promise<void> {
    this.budget.release(this.held)
    this.held = 0
    this.pieces = []
    return Promise.resolve()
  }
}

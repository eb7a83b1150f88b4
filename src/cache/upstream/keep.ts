import type { ByteBudget } from '../../budget.ts'
import { NixcasError } from '../../errors.ts'
import { Pieces } from './pieces.ts'

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
  /**
   * Copies: the piece itself goes on to the ingest, which may take it over (transfer it to a
   * worker thread). Blocks of at most a quarter of the window, so that it moves on in steps
   * smaller than itself.
   */
  private readonly held: Pieces

  constructor(
    private readonly windowBytes: number,
    private readonly budget: ByteBudget,
  ) {
    this.held = new Pieces(true, Math.min(64 * 1024, Math.max(1, Math.floor(windowBytes / 4))))
  }

  get start(): number {
    return this.held.start
  }

  async add(piece: Uint8Array, signal: AbortSignal): Promise<Uint8Array> {
    await this.budget.acquire(piece.length, this.held.end === this.held.start, signal)
    this.held.append(piece)
    for (let first = this.held.firstLength; first !== undefined && this.held.end - this.held.start - first >= this.windowBytes; first = this.held.firstLength) {
      this.held.dropFirst(1)
      this.budget.release(first)
    }
    return piece
  }

  /** Synchronous in substance: what was checked to be in the window is still there. */
  async read(offset: number, length: number): Promise<Uint8Array> {
    return this.held.read(offset, length)
  }

  /** The window's pieces are shared by its readers for as long as it keeps them. */
  flush(): Promise<void> {
    return Promise.reject(new NixcasError('INTERNAL', 'a window cannot hand out bytes of their own'))
  }

  free(): Promise<void> {
    this.budget.release(this.held.end - this.held.start)
    this.held.dropFirst(this.held.count)
    return Promise.resolve()
  }
}

import { setImmediate as nextTurn } from 'node:timers/promises'
import { newProgress } from '../../codec/input.ts'
import { NixcasError } from '../../errors.ts'
import { NarError } from '../../nix/nar-format.ts'
import { abortError } from './abort.ts'
import { InputQueue } from './input-queue.ts'
import { parseNarEvents } from './parse.ts'
import { BatchWriter, type FromWorker, type ToWorker, type WireError } from './wire.ts'

export type OpenMessage = Extract<ToWorker, { kind: 'open' }>
export type Post = (message: FromWorker, transfer?: ArrayBuffer[]) => void

/** Past this many events a batch is sent even if its bytes are few (a NAR of many small files). */
const BATCH_EVENTS = 1024
/**
 * How long events may wait in a batch while the worker waits for input: a slow client does
 * not hold them back for long, and a fast one does not cost a message per body chunk.
 */
const STARVED_FLUSH_MS = 10

export function toWireError(error: unknown): WireError {
  if (error instanceof NarError) return { code: error.code, message: error.message, reason: error.reason, offset: error.offset }
  if (error instanceof NixcasError) return { code: error.code, message: error.message }
  return { code: 'INTERNAL', message: `the ingest worker failed: ${error instanceof Error ? error.message : String(error)}` }
}

/**
 * One upload inside a worker. It parses while it has credit (the main thread grants it as
 * its consumer pulls events), sends events in batches, and yields to the worker's event
 * loop after every batch, so that a cancel or more credit for any session on this worker
 * is seen within one batch's work.
 */
export class WorkerSession {
  readonly input: InputQueue
  private readonly controller = new AbortController()
  private readonly batch = new BatchWriter()
  private credit: number
  private produced = 0
  private takenSent = 0
  /** The main thread has stopped sending input until it hears what was taken. */
  private mainWaiting = false
  private starvedFlush: NodeJS.Timeout | undefined
  private creditArrived: (() => void) | undefined
  waitingForCredit = false
  /** The decoder's counts: what it read and produced, including bytes it holds. */
  readonly progress = newProgress()

  constructor(
    private readonly open: OpenMessage,
    private readonly post: Post,
  ) {
    this.credit = open.credit
    // What was taken is told in steps of half the main thread's input bound (it keeps sending
    // meanwhile); when it waits, in steps of an eighth, or at once when this side runs dry.
    // Never per piece: a report per piece taken made a round trip of messages per 64 KiB.
    // A report alone is a small message; the batch goes when it is full or the parse waits.
    this.input = new InputQueue(
      () => {
        const step = this.mainWaiting ? open.ackBytes / 4 : open.ackBytes
        if (this.input.taken - this.takenSent >= step) this.reportTaken()
      },
      () => {
        if (this.mainWaiting && this.input.taken > this.takenSent) this.reportTaken()
        if (this.batch.events > 0) this.starvedFlush ??= setTimeout(() => this.flush(), STARVED_FLUSH_MS)
      },
    )
  }

  /** The main thread waits for room to send more input. */
  waiting(): void {
    this.mainWaiting = true
    if (this.input.queued === 0 && this.input.taken > this.takenSent) this.reportTaken()
  }

  /** Tells the main thread how much input was taken, without the events gathered so far. */
  private reportTaken(): void {
    const taken = this.input.taken
    if (taken <= this.takenSent) return
    this.mainWaiting = false
    this.takenSent = taken
    this.post({ kind: 'taken', id: this.open.id, taken })
  }

  grant(credit: number): void {
    if (credit <= this.credit) return
    this.credit = credit
    this.wakeCredit()
  }

  /** Stops the parse at its next step and drops the queued input. */
  cancel(): void {
    clearTimeout(this.starvedFlush)
    this.controller.abort(new NixcasError('ABORTED', 'the upload was aborted'))
    this.input.fail(abortError(this.controller.signal))
    this.wakeCredit()
  }

  private wakeCredit(): void {
    const wake = this.creditArrived
    this.creditArrived = undefined
    wake?.()
  }

  /** Sends the events gathered so far, and how much input was taken, if either is news. */
  private flush(): void {
    clearTimeout(this.starvedFlush)
    this.starvedFlush = undefined
    const taken = this.input.taken
    if (taken > this.takenSent) this.mainWaiting = false
    if (this.batch.events > 0) {
      const { batch, transfer } = this.batch.take()
      this.post({ kind: 'events', id: this.open.id, batch, taken }, transfer)
    } else if (taken > this.takenSent) {
      this.post({ kind: 'taken', id: this.open.id, taken })
    }
    this.takenSent = taken
  }

  private async waitForCredit(): Promise<void> {
    this.flush()
    this.waitingForCredit = true
    try {
      while (this.produced >= this.credit) {
        this.controller.signal.throwIfAborted()
        await new Promise<void>((resolve) => (this.creditArrived = resolve))
      }
    } finally {
      this.waitingForCredit = false
    }
  }

  /** Parses to the end, an error, or a cancel; never rejects. */
  async run(): Promise<void> {
    const { signal } = this.controller
    try {
      const events = parseNarEvents(this.input, {
        method: this.open.method,
        chunkSizes: this.open.chunkSizes,
        maxNarSize: this.open.maxNarSize,
        signal,
        progress: this.progress,
      })
      for await (const event of events) {
        this.produced += this.batch.add(event)
        if (this.batch.pendingCost >= this.open.batchBytes || this.batch.events >= BATCH_EVENTS) {
          this.flush()
          await nextTurn()
          signal.throwIfAborted()
        }
        if (this.produced >= this.credit) await this.waitForCredit()
      }
      this.flush()
    } catch (error) {
      if (signal.aborted) return
      // The events before the error go first, as the in-thread producer yields them.
      this.flush()
      this.post({ kind: 'error', id: this.open.id, error: toWireError(error), taken: this.input.taken })
    }
  }
}

import type { ByteBudget } from '../../budget.ts'
import { NixcasError, errorTable, type ErrorCode } from '../../errors.ts'
import { NarError, type NarErrorReason } from '../../nix/nar-format.ts'
import type { IngestEvent } from '../events.ts'
import { eventCost, readBatch, type FromWorker, type ToWorker, type WireError } from './wire.ts'

/** Body bytes posted to a worker in one message at most. */
const INPUT_MESSAGE_BYTES = 256 * 1024

export interface SessionLimits {
  /** Body bytes sent to the worker and not yet taken by its decoder. */
  inputBytes: number
  /** Cost of events the worker may produce ahead of the consumer (see `eventCost`). */
  outputBytes: number
  /** A batch is sent once its events cost this much. */
  batchBytes: number
}

/** The worker's error as the same NixcasError (code, message, and a NarError's reason and offset). */
export function fromWireError(wire: WireError): NixcasError {
  const code: ErrorCode = Object.hasOwn(errorTable, wire.code) ? (wire.code as ErrorCode) : 'INTERNAL'
  const error = code === 'BAD_NAR' && wire.reason !== undefined ? new NarError(wire.reason as NarErrorReason, wire.offset ?? 0, '') : new NixcasError(code, wire.message)
  // NarError builds its message from its parts: keep the worker's, which is the same text.
  error.message = wire.message
  return error
}

/**
 * The main thread's side of one upload parsed in a worker. Flow control both ways, in the
 * manner of HTTP/2 windows:
 * - input: body chunks go to the worker while fewer than `inputBytes` are queued there
 *   (the worker reports what its decoder has taken); past that, the body is not read;
 * - output: the worker parses while the cost of what it produced is below the credit
 *   granted here; credit is granted as the consumer pulls events.
 * Every byte either way is first reserved in the shared budget, so the total over all
 * sessions is bounded too. A session holding nothing in one direction may always take one
 * piece there (as ByteBudget allows), so no session can starve or deadlock another.
 */
export class Session {
  private readonly queue: IngestEvent[] = []
  private head = 0
  private failure: Error | undefined
  private finished = false
  /** The worker sends nothing more for this session (done, error, or cancelled). */
  private workerDone = false
  private closed = false
  private sent = 0
  private taken = 0
  private granted = 0
  private pulled = 0
  private outputHeld = 0
  private wakeConsumer: (() => void) | undefined
  private wakePump: (() => void) | undefined
  /** A 'waiting' message was sent and no report of input taken has come since. */
  private askedForTaken = false
  /** Body pieces counted as sent and not yet posted (see `flushInput`). */
  private unsent: Uint8Array[] = []
  private unsentBytes = 0
  private flushQueued: NodeJS.Immediate | undefined

  constructor(
    readonly id: number,
    private readonly post: (message: ToWorker, transfer?: ArrayBuffer[]) => void,
    private readonly limits: SessionLimits,
    private readonly budget: ByteBudget,
    /** Called when this session gave budget back, so that others waiting for it retry. */
    private readonly released: () => void,
  ) {}

  /** Opens the session in the worker with its first credit. */
  start(options: Omit<Extract<ToWorker, { kind: 'open' }>, 'kind' | 'id' | 'credit' | 'batchBytes' | 'ackBytes'>): void {
    this.topUp(false)
    const { batchBytes, inputBytes } = this.limits
    this.post({ kind: 'open', id: this.id, credit: this.granted, batchBytes, ackBytes: Math.ceil(inputBytes / 2), ...options })
  }

  /** The next event; undefined after `done`. */
  async next(): Promise<IngestEvent | undefined> {
    for (;;) {
      if (this.head < this.queue.length) {
        const event = this.queue[this.head] as IngestEvent
        this.queue[this.head++] = undefined as unknown as IngestEvent
        if (this.head > 1024 && this.head * 2 > this.queue.length) {
          this.queue.splice(0, this.head)
          this.head = 0
        }
        this.pull(eventCost(event))
        return event
      }
      if (this.failure) throw this.failure
      if (this.finished || this.closed) return undefined
      await new Promise<void>((resolve) => (this.wakeConsumer = resolve))
    }
  }

  receive(message: FromWorker): void {
    if (this.workerDone) return
    if ('taken' in message) this.inputTaken(message.taken)
    if (message.kind === 'events') {
      for (const event of readBatch(message.batch)) {
        this.queue.push(event)
        if (event.type === 'done') this.finished = true
      }
      if (this.finished) this.endWorker()
    } else if (message.kind === 'error') {
      // The worker has already dropped the session: nothing to cancel there.
      this.workerDone = true
      this.fail(fromWireError(message.error), false)
    }
    this.wake()
  }

  /**
   * Fails the session. `immediate` (abort, a dead worker, a failed body) drops the events
   * not yet pulled; otherwise (a parse error) they are delivered first, as in-thread.
   */
  fail(error: Error, immediate: boolean): void {
    if (this.failure || this.finished || this.closed) return
    this.failure = error
    if (immediate) {
      this.queue.length = this.head = 0
      this.releaseOutput()
    }
    this.endWorker()
    this.wake()
  }

  /** The consumer is done with the session (finished, failed or stopped early): all is given back. */
  close(): void {
    if (this.closed) return
    this.closed = true
    this.queue.length = this.head = 0
    this.endWorker()
    this.releaseOutput()
    this.wake()
  }

  /** The worker's part is over: it drops the session unless it already ended, and its queued input is freed. */
  private endWorker(): void {
    if (!this.workerDone && !this.finished) this.post({ kind: 'cancel', id: this.id })
    this.workerDone = true
    this.flushInput()
    const inFlight = this.sent - this.taken
    this.taken = this.sent
    if (inFlight > 0) {
      this.budget.release(inFlight)
      this.released()
    }
  }

  private releaseOutput(): void {
    if (this.outputHeld === 0) return
    this.budget.release(this.outputHeld)
    this.outputHeld = 0
    this.released()
  }

  /** Sends the body to the worker as the bounds allow; never rejects (a failure fails the session). */
  async pump(body: AsyncIterable<Uint8Array>): Promise<void> {
    try {
      for await (const chunk of body) {
        if (chunk.byteLength === 0) continue
        if (!(await this.roomForInput(chunk.byteLength))) return
        this.send(chunk)
      }
      this.flushInput()
      if (!this.workerDone) this.post({ kind: 'end', id: this.id })
    } catch (error) {
      this.fail(error instanceof Error ? error : new Error(String(error)), true)
    }
  }

  /** Budget was given back somewhere in the pool: what waited for it tries again. */
  retry(): void {
    this.topUp(true)
    this.wakePump?.()
  }

  private wake(): void {
    const consumer = this.wakeConsumer
    const pump = this.wakePump
    this.wakeConsumer = this.wakePump = undefined
    consumer?.()
    pump?.()
  }

  private async roomForInput(size: number): Promise<boolean> {
    for (;;) {
      if (this.workerDone) return false
      const inFlight = this.sent - this.taken
      const fits = inFlight === 0 || inFlight + size <= this.limits.inputBytes
      if (fits && this.budget.tryAcquire(size, inFlight === 0)) return true
      // No room (in the window, or in the budget): the worker reports what it took in steps,
      // so ask it to report now. What it took frees both.
      if (!this.askedForTaken) {
        // What it is to take must be there before it is asked what it took.
        this.flushInput()
        this.post({ kind: 'waiting', id: this.id })
        this.askedForTaken = true
      }
      await new Promise<void>((resolve) => (this.wakePump = resolve))
    }
  }

  /**
   * A chunk that is its own whole ArrayBuffer (as an HTTP body's are) moves to the worker
   * and is detached here: the body's chunks are handed over. Any other is copied once, so
   * the transfer detaches nothing that someone else still uses.
   */
  private send(chunk: Uint8Array): void {
    const own = chunk.byteOffset === 0 && chunk.byteLength === chunk.buffer.byteLength && chunk.buffer instanceof ArrayBuffer
    const bytes = own ? chunk : new Uint8Array(chunk)
    this.sent += bytes.byteLength
    this.unsent.push(bytes)
    this.unsentBytes += bytes.byteLength
    if (this.unsentBytes >= INPUT_MESSAGE_BYTES) this.flushInput()
    else this.flushQueued ??= setImmediate(() => this.flushInput())
  }

  /**
   * Posts the pieces gathered since the last message: those that arrived in one turn of the
   * event loop (a body read ahead arrives so), up to INPUT_MESSAGE_BYTES, go as one message.
   */
  private flushInput(): void {
    if (this.flushQueued !== undefined) clearImmediate(this.flushQueued)
    this.flushQueued = undefined
    const pieces = this.unsent
    this.unsent = []
    this.unsentBytes = 0
    // After the worker's part ended nothing is posted; what was counted as sent is released there.
    if (pieces.length === 0 || this.workerDone) return
    this.post({ kind: 'input', id: this.id, pieces }, pieces.map((piece) => piece.buffer as ArrayBuffer))
  }

  private inputTaken(taken: number): void {
    if (taken <= this.taken) return
    this.askedForTaken = false
    this.budget.release(taken - this.taken)
    this.taken = taken
    this.wakePump?.()
    this.released()
  }

  private pull(cost: number): void {
    this.pulled += cost
    const held = Math.max(0, this.granted - this.pulled)
    if (held < this.outputHeld) {
      this.budget.release(this.outputHeld - held)
      this.outputHeld = held
      this.released()
    }
    this.topUp(true)
  }

  /** Grants the worker more credit once half of it was pulled, as far as the budget allows. */
  private topUp(announce: boolean): void {
    if (this.workerDone) return
    const outstanding = this.granted - this.pulled
    if (outstanding > this.limits.outputBytes / 2) return
    let grant = this.limits.outputBytes - Math.max(0, outstanding)
    if (!this.budget.tryAcquire(grant, false)) {
      // Holding nothing, one batch's worth may always be taken; otherwise wait for a release.
      if (this.outputHeld > 0) return
      grant = Math.min(grant, this.limits.batchBytes)
      this.budget.tryAcquire(grant, true)
    }
    this.granted = Math.max(this.granted, this.pulled) + grant
    this.outputHeld += grant
    if (announce) this.post({ kind: 'credit', id: this.id, credit: this.granted })
  }
}

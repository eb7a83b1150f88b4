import { availableParallelism } from 'node:os'
import type { Worker } from 'node:worker_threads'
import { ByteBudget } from '../../budget.ts'
import { NixcasError } from '../../errors.ts'
import type { IngestEvent } from '../events.ts'
import { abortError } from './abort.ts'
import type { ParseOptions } from './parse.ts'
import { Session, type SessionLimits } from './session.ts'
import type { WorkerStats } from './wire.ts'
import { WorkerHandle } from './worker-handle.ts'

const MiB = 1024 * 1024

export interface IngestWorkersOptions {
  /** Worker threads; default one per core but one, so the main thread keeps a core for I/O. */
  size?: number
  /** Shared by every session's input and output; default 256 MiB. */
  budget?: ByteBudget
  /** Body bytes queued in a worker per session before the body stops being read; default 1 MiB. */
  sessionInputBytes?: number
  /** Bytes of events parsed ahead of a session's consumer; default 4 MiB (four chunks of the largest size). */
  sessionOutputBytes?: number
  /** Heap limit of each worker (MB): one that runs out dies alone, and is replaced. Default 256. */
  maxHeapMb?: number
}

export type WorkerParseOptions = Omit<ParseOptions, 'progress'>

/**
 * A pool of worker threads doing the CPU half of ingests (decode, parse, chunk, hash), so
 * the event loop stays free for requests. Sessions share workers: each worker runs many
 * uploads at once, interleaved batch by batch, so none waits for another to finish.
 * `parse` yields exactly the events `parseNarEvents` yields for the same input.
 */
export class IngestWorkers {
  readonly size: number
  readonly budget: ByteBudget
  private readonly limits: SessionLimits
  private readonly maxHeapMb: number
  private readonly slots: (WorkerHandle | undefined)[]
  private readonly sessions = new Set<Session>()
  private nextId = 1
  private closed = false
  private retryQueued = false

  constructor(options: IngestWorkersOptions = {}) {
    this.size = Math.max(1, Math.floor(options.size ?? availableParallelism() - 1))
    this.budget = options.budget ?? new ByteBudget(256 * MiB)
    const outputBytes = options.sessionOutputBytes ?? 4 * MiB
    this.limits = {
      inputBytes: options.sessionInputBytes ?? MiB,
      outputBytes,
      batchBytes: Math.max(64 * 1024, Math.min(MiB, Math.floor(outputBytes / 4))),
    }
    this.maxHeapMb = options.maxHeapMb ?? 256
    this.slots = Array.from({ length: this.size }, () => undefined)
  }

  /**
   * The events of the NAR uploaded as `body`. The body's chunks are handed over: one that
   * spans its whole ArrayBuffer (as an HTTP body's do) is moved to the worker, detached.
   * Stopping the generator early, or aborting `signal`, drops the work at once.
   */
  async *parse(body: AsyncIterable<Uint8Array>, options: WorkerParseOptions): AsyncGenerator<IngestEvent> {
    if (this.closed) throw new NixcasError('INTERNAL', 'the ingest workers are closed')
    const { signal } = options
    signal?.throwIfAborted()
    const handle = this.pick()
    const id = this.nextId++
    const session = new Session(id, (message, transfer) => handle.post(message, transfer), this.limits, this.budget, () => this.released())
    const onAbort = (): void => session.fail(abortError(signal as AbortSignal), true)
    const release = handle.hold()
    handle.sessions.set(id, session)
    this.sessions.add(session)
    signal?.addEventListener('abort', onAbort, { once: true })
    try {
      session.start({ method: options.method, chunkSizes: options.chunkSizes, maxNarSize: options.maxNarSize })
      void session.pump(body)
      for (;;) {
        const event = await session.next()
        if (event === undefined) return
        yield event
      }
    } finally {
      signal?.removeEventListener('abort', onAbort)
      session.close()
      handle.sessions.delete(id)
      this.sessions.delete(session)
      release()
    }
  }

  /** What each live worker reports (progress counters, sessions, waiting). */
  async stats(): Promise<WorkerStats[]> {
    return Promise.all(this.live().map((handle) => handle.stats()))
  }

  /** The live worker threads, for metrics (e.g. `performance.eventLoopUtilization()`) and diagnostics. */
  threads(): Worker[] {
    return this.live().map((handle) => handle.worker)
  }

  /** Terminates the workers; sessions still running fail with INTERNAL. */
  async close(): Promise<void> {
    this.closed = true
    await Promise.all(this.live().map((handle) => handle.terminate('the ingest workers were closed')))
  }

  private live(): WorkerHandle[] {
    return this.slots.filter((handle): handle is WorkerHandle => handle !== undefined)
  }

  /** The worker with the fewest sessions; an empty slot gets a new one when every live worker is busy. */
  private pick(): WorkerHandle {
    let best: WorkerHandle | undefined
    for (const handle of this.live()) if (!best || handle.sessions.size < best.sessions.size) best = handle
    const empty = this.slots.indexOf(undefined)
    if (best && (best.sessions.size === 0 || empty < 0)) return best
    const handle = new WorkerHandle({ maxOldGenerationSizeMb: this.maxHeapMb }, (dead) => {
      const index = this.slots.indexOf(dead)
      if (index >= 0) this.slots[index] = undefined
    })
    this.slots[empty] = handle
    return handle
  }

  /** Budget was given back: sessions that waited for it try again (once per turn, however many releases). */
  private released(): void {
    if (this.retryQueued) return
    this.retryQueued = true
    queueMicrotask(() => {
      this.retryQueued = false
      for (const session of this.sessions) session.retry()
    })
  }
}

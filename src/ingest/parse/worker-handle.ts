import type { ResourceLimits, Worker } from 'node:worker_threads'
import { NixcasError } from '../../errors.ts'
import type { Session } from './session.ts'
import { spawnIngestWorker } from './spawn.ts'
import type { FromWorker, ToWorker, WorkerStats } from './wire.ts'

/**
 * One ingest worker and the sessions it runs. Whatever ends the worker (an uncaught error,
 * running out of heap, an exit) fails its sessions with INTERNAL and is reported once to
 * the pool, which replaces it: no error of a worker reaches the main process.
 */
export class WorkerHandle {
  readonly worker: Worker
  readonly sessions = new Map<number, Session>()
  private readonly statsRequests = new Map<number, { resolve: (stats: WorkerStats) => void; reject: (error: Error) => void }>()
  private nextRequest = 1
  private refs = 0
  dead = false

  constructor(
    resourceLimits: ResourceLimits,
    private readonly onDeath: (handle: WorkerHandle) => void,
  ) {
    this.worker = spawnIngestWorker(resourceLimits)
    // Idle workers must not keep the process alive; busy ones are referenced (see `hold`).
    this.worker.unref()
    this.worker.on('message', (message: FromWorker) => this.receive(message))
    this.worker.on('error', (error) => this.die(`the ingest worker failed: ${error.message}`))
    this.worker.on('messageerror', (error) => this.die(`a message from the ingest worker could not be read: ${error.message}`))
    this.worker.on('exit', (code) => this.die(`the ingest worker exited with code ${code}`))
  }

  post(message: ToWorker, transfer: ArrayBuffer[] = []): void {
    if (this.dead) return
    try {
      this.worker.postMessage(message, transfer)
    } catch (error) {
      this.die(`a message to the ingest worker could not be sent: ${(error as Error).message}`)
    }
  }

  /** Keeps the process alive while something waits on this worker. */
  hold(): () => void {
    if (this.refs++ === 0) this.worker.ref()
    let released = false
    return () => {
      if (released) return
      released = true
      if (--this.refs === 0) this.worker.unref()
    }
  }

  stats(): Promise<WorkerStats> {
    if (this.dead) return Promise.reject(new NixcasError('INTERNAL', 'the ingest worker has stopped'))
    const request = this.nextRequest++
    const release = this.hold()
    return new Promise<WorkerStats>((resolve, reject) => {
      this.statsRequests.set(request, { resolve, reject })
      this.post({ kind: 'stats', request })
    }).finally(release)
  }

  private receive(message: FromWorker): void {
    if (message.kind === 'stats') {
      this.statsRequests.get(message.request)?.resolve(message.stats)
      this.statsRequests.delete(message.request)
      return
    }
    try {
      this.sessions.get(message.id)?.receive(message)
    } catch (error) {
      // A batch that cannot be read is a fault of ours; it fails that session only.
      this.sessions.get(message.id)?.fail(new NixcasError('INTERNAL', `an ingest worker sent an unreadable batch: ${(error as Error).message}`), true)
    }
  }

  /** Terminates the worker; its sessions fail with `reason`. */
  async terminate(reason: string): Promise<void> {
    this.die(reason)
    await this.worker.terminate()
  }

  private die(reason: string): void {
    if (this.dead) return
    this.dead = true
    const error = new NixcasError('INTERNAL', reason)
    for (const session of this.sessions.values()) session.fail(error, true)
    for (const request of this.statsRequests.values()) request.reject(error)
    this.statsRequests.clear()
    this.onDeath(this)
    // After an uncaught error the worker is on its way out already; this makes sure.
    void this.worker.terminate()
  }
}

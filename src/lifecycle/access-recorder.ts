import { randomBytes } from 'node:crypto'
import { keys } from '../cas/keys.ts'
import type { ObjectStore } from '../stores/store.ts'
import { encodeAccessRecord } from './access-log.ts'

export interface AccessRecorderOptions {
  /** Distinct paths and NARs held between flushes; a full recorder flushes early. */
  maxEntries: number
  /** Told when a flush fails (its entries are kept for the next one, room permitting). */
  onError?: (error: unknown) => void
}

/**
 * What one replica served since its last flush: store path hashes (narinfo GET and HEAD
 * hits) and NAR hashes (NAR GETs), each once, in two Sets. Recording is a Set insertion of
 * a string the request already holds: no store write, no allocation beyond the Set's own
 * growth. Memory is bounded by `maxEntries`; a full recorder starts a flush, and what
 * arrives while a flush cannot keep up is dropped (counted) — it costs retention only a
 * missed download, never a wrong deletion of a path pushed within it.
 */
export class AccessRecorder {
  private paths = new Set<string>()
  private nars = new Set<string>()
  private flushing: Promise<void> | undefined
  private timer: NodeJS.Timeout | undefined
  /** Entries dropped because the recorder was full. */
  dropped = 0
  /** Records written. */
  flushes = 0
  /** Numbers this replica's writes, so two flushes in one millisecond never share a key. */
  private sequence = 0
  /** Names this replica's records: one object per replica per flush. */
  private readonly replica = randomBytes(6).toString('hex')

  constructor(
    private readonly store: ObjectStore,
    private readonly options: AccessRecorderOptions,
  ) {}

  get size(): number {
    return this.paths.size + this.nars.size
  }

  /** A narinfo of this store path hash was served. */
  path(hash: string): void {
    if (this.room()) this.paths.add(hash)
  }

  /** The NAR of this hash (nixbase32) was served. */
  nar(hash: string): void {
    if (this.room()) this.nars.add(hash)
  }

  private room(): boolean {
    if (this.size < this.options.maxEntries) return true
    this.dropped++
    if (this.flushing === undefined) void this.flush().catch(() => undefined)
    return false
  }

  /** Flushes every `intervalMs` until `close`, without keeping the process alive. */
  start(intervalMs: number): void {
    this.timer = setInterval(() => void this.flush().catch(() => undefined), intervalMs)
    this.timer.unref()
  }

  /** Writes what was recorded as one record (nothing when empty); one flush at a time. */
  async flush(): Promise<void> {
    while (this.flushing) await this.flushing
    if (this.size === 0) return
    const paths = this.paths
    const nars = this.nars
    this.paths = new Set()
    this.nars = new Set()
    this.flushing = this.write(paths, nars)
    try {
      await this.flushing
    } finally {
      this.flushing = undefined
    }
  }

  private async write(paths: Set<string>, nars: Set<string>): Promise<void> {
    try {
      await this.store.put(keys.accessRecord(`${Date.now().toString(36)}-${this.replica}-${this.sequence++}`), encodeAccessRecord(paths, nars))
      this.flushes++
    } catch (error) {
      // Kept for the next flush while there is room: a store that is down for a while loses only the overflow.
      for (const hash of paths) this.path(hash)
      for (const hash of nars) this.nar(hash)
      this.options.onError?.(error)
      throw error
    }
  }

  /** Stops the timer and writes what is left (graceful shutdown). */
  async close(): Promise<void> {
    clearInterval(this.timer)
    await this.flush()
  }
}

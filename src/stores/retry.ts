import type { Logger } from 'pino'
import { setTimeout as sleep } from 'node:timers/promises'
import { StoreError, isTransient, type ByteRange, type ListedObject, type Locality, type ObjectStore, type PutOptions, type ReadOptions } from './store.ts'

export interface RetryOptions {
  attempts?: number
  /** Milliseconds before the second attempt, doubled each time up to maxDelay. */
  baseDelay?: number
  maxDelay?: number
  /** Called once per retry (metrics). */
  onRetry?: (operation: string) => void
}

/**
 * Retries transient failures (5xx, throttling, timeouts, resets) with exponential backoff
 * and full jitter. Absent objects and permanent errors are answers, returned at once.
 * A read that breaks mid-stream resumes from the last byte delivered.
 *
 * The logger is expected to be bound to this instance already (`store`, as compose.ts
 * does for every instance), so a retry line names it once.
 */
export class RetryStore implements ObjectStore {
  readonly trusted: boolean
  readonly locality: Locality
  private readonly attempts: number
  private readonly baseDelay: number
  private readonly maxDelay: number

  constructor(
    readonly name: string,
    private readonly inner: ObjectStore,
    private readonly logger: Logger,
    private readonly options: RetryOptions = {},
  ) {
    this.trusted = inner.trusted
    this.locality = inner.locality
    this.attempts = options.attempts ?? 5
    this.baseDelay = options.baseDelay ?? 100
    this.maxDelay = options.maxDelay ?? 5000
  }

  /** Waits before retry number `failures`; throws `error` when it should not be retried. */
  private async backoff(operation: string, key: string, failures: number, error: unknown, signal?: AbortSignal): Promise<void> {
    if (!isTransient(error) || failures >= this.attempts || signal?.aborted) throw error
    const delay = Math.round(Math.random() * Math.min(this.maxDelay, this.baseDelay * 2 ** (failures - 1)))
    this.logger.warn(
      { inner: this.inner.name, operation, key, attempt: failures + 1, delay, err: (error as Error).message },
      'store retry',
    )
    this.options.onRetry?.(operation)
    await sleep(delay, undefined, { signal })
  }

  private async retry<T>(operation: string, key: string, call: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    for (let failures = 1; ; failures++) {
      try {
        return await call()
      } catch (error) {
        await this.backoff(operation, key, failures, error, signal)
      }
    }
  }

  get(key: string, options?: ReadOptions): Promise<Buffer | undefined> {
    return this.retry('get', key, () => this.inner.get(key, options), options?.signal)
  }

  async stream(key: string, options: ReadOptions = {}): Promise<AsyncIterable<Uint8Array> | undefined> {
    const source = await this.retry('stream', key, () => this.inner.stream(key, options), options.signal)
    return source && this.resume(key, options, source)
  }

  /**
   * Breaks count against the budget only while they make no progress: a long read over a
   * connection that drops now and then resumes each time (every resume moves forward, so
   * this ends), while one that fails without delivering a byte gives up like any call.
   */
  private async *resume(key: string, options: ReadOptions, source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    let delivered = 0
    let current = source
    for (let failures = 1; ; failures++) {
      const before = delivered
      try {
        for await (const chunk of current) {
          delivered += chunk.length
          yield chunk
        }
        return
      } catch (error) {
        if (delivered > before) failures = 1
        await this.backoff('stream', key, failures, error, options.signal)
      }
      const range: ByteRange = {
        offset: (options.range?.offset ?? 0) + delivered,
        length: options.range?.length === undefined ? undefined : options.range.length - delivered,
      }
      const next = await this.retry('stream', key, () => this.inner.stream(key, { ...options, range }), options.signal)
      if (next === undefined) throw new StoreError(this.name, 'stream', key, 'the object vanished while being read', { transient: false })
      current = next
    }
  }

  head(key: string, options?: { signal?: AbortSignal }): Promise<number | undefined> {
    return this.retry('head', key, () => this.inner.head(key, options), options?.signal)
  }

  put(key: string, bytes: Uint8Array, options?: PutOptions): Promise<void> {
    return this.retry('put', key, () => this.inner.put(key, bytes, options), options?.signal)
  }

  delete(key: string): Promise<void> {
    return this.retry('delete', key, () => this.inner.delete(key))
  }

  /** Deleting is idempotent, so a failed batch is retried whole. */
  deleteMany(keys: readonly string[]): Promise<void> {
    return this.retry('deleteMany', keys[0] ?? '', () => this.inner.deleteMany(keys))
  }

  /**
   * A listing that fails part-way starts again after the last key it yielded: listings come
   * in key order (the store contract), so only that key is held, however many objects the
   * prefix has. Were the inner store ever to list out of order, a failure is passed on
   * rather than retried, since resuming could then skip objects.
   */
  async *list(prefix: string): AsyncGenerator<ListedObject> {
    let last: string | undefined
    let ordered = true
    // Counted from the last time an attempt got back to where the one before it failed, so faults spread over a long listing do not add up.
    for (let failures = 1; ; failures++) {
      const resumeAfter = last
      try {
        for await (const object of this.inner.list(prefix)) {
          if (resumeAfter !== undefined && object.key <= resumeAfter) {
            if (object.key === resumeAfter) failures = 1
            continue
          }
          if (last !== undefined && object.key <= last) ordered = false
          last = object.key
          yield object
        }
        return
      } catch (error) {
        if (!ordered) throw error
        await this.backoff('list', prefix, failures, error)
      }
    }
  }

  close(): Promise<void> {
    return Promise.resolve()
  }
}

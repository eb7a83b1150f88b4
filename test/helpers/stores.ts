import { setTimeout as sleep } from 'node:timers/promises'
import type { ListedObject, Locality, ObjectStore, PutOptions, ReadOptions } from '../../src/stores/store.ts'

/**
 * Wraps a real store to count its calls and, when asked, add latency: for asserting how
 * many round trips a layer above makes.
 */
export class CountingStore implements ObjectStore {
  readonly counts = { get: 0, stream: 0, head: 0, put: 0, delete: 0, list: 0 }
  /** Bytes returned by get(), and the most one get() returned. */
  bytesRead = 0
  largestRead = 0
  /** Milliseconds added to every read. */
  delay = 0
  /** Reads in flight now, and the most there ever were. */
  inFlight = 0
  peakInFlight = 0

  /** Set false to make layers above check digests, as they do for remote stores. */
  trusted: boolean
  readonly locality: Locality

  constructor(
    readonly inner: ObjectStore,
    readonly name = `counting(${inner.name})`,
  ) {
    this.trusted = inner.trusted
    this.locality = inner.locality
  }

  private async read<T>(operation: 'get' | 'stream' | 'head', call: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    this.counts[operation]++
    this.inFlight++
    this.peakInFlight = Math.max(this.peakInFlight, this.inFlight)
    try {
      if (this.delay > 0) await sleep(this.delay, undefined, { signal })
      return await call()
    } finally {
      this.inFlight--
    }
  }

  get(key: string, options?: ReadOptions): Promise<Buffer | undefined> {
    return this.read('get', async () => {
      const bytes = await this.inner.get(key, options)
      this.bytesRead += bytes?.length ?? 0
      this.largestRead = Math.max(this.largestRead, bytes?.length ?? 0)
      return bytes
    }, options?.signal)
  }

  stream(key: string, options?: ReadOptions): Promise<AsyncIterable<Uint8Array> | undefined> {
    return this.read('stream', () => this.inner.stream(key, options), options?.signal)
  }

  head(key: string, options?: { signal?: AbortSignal }): Promise<number | undefined> {
    return this.read('head', () => this.inner.head(key, options), options?.signal)
  }

  put(key: string, bytes: Uint8Array, options?: PutOptions): Promise<void> {
    this.counts.put++
    return this.inner.put(key, bytes, options)
  }

  delete(key: string): Promise<void> {
    this.counts.delete++
    return this.inner.delete(key)
  }

  deleteMany(keys: readonly string[]): Promise<void> {
    this.counts.delete += keys.length
    return this.inner.deleteMany(keys)
  }

  list(prefix: string): AsyncIterable<ListedObject> {
    this.counts.list++
    return this.inner.list(prefix)
  }

  close(): Promise<void> {
    return this.inner.close()
  }
}

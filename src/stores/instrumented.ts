import type { Counter } from '../metrics.ts'
import type { ListedObject, Locality, ObjectStore, PutOptions, ReadOptions } from './store.ts'

/** Counts every operation (and failure) of a store by its instance name; otherwise transparent. */
export class InstrumentedStore implements ObjectStore {
  readonly name: string
  readonly trusted: boolean
  readonly locality: Locality

  constructor(
    private readonly inner: ObjectStore,
    private readonly requests: Counter,
    private readonly errors: Counter,
  ) {
    this.name = inner.name
    this.trusted = inner.trusted
    this.locality = inner.locality
  }

  private async count<T>(operation: string, call: () => Promise<T>): Promise<T> {
    this.requests.inc({ store: this.name, operation })
    try {
      return await call()
    } catch (error) {
      this.errors.inc({ store: this.name, operation })
      throw error
    }
  }

  get(key: string, options?: ReadOptions): Promise<Buffer | undefined> {
    return this.count('get', () => this.inner.get(key, options))
  }

  stream(key: string, options?: ReadOptions): Promise<AsyncIterable<Uint8Array> | undefined> {
    return this.count('stream', () => this.inner.stream(key, options))
  }

  head(key: string, options?: { signal?: AbortSignal }): Promise<number | undefined> {
    return this.count('head', () => this.inner.head(key, options))
  }

  put(key: string, bytes: Uint8Array, options?: PutOptions): Promise<void> {
    return this.count('put', () => this.inner.put(key, bytes, options))
  }

  delete(key: string): Promise<void> {
    return this.count('delete', () => this.inner.delete(key))
  }

  deleteMany(keys: readonly string[]): Promise<void> {
    return this.count('deleteMany', () => this.inner.deleteMany(keys))
  }

  list(prefix: string): AsyncIterable<ListedObject> {
    this.requests.inc({ store: this.name, operation: 'list' })
    return this.inner.list(prefix)
  }

  close(): Promise<void> {
    return this.inner.close()
  }
}

import { LRUCache } from 'lru-cache'
import { NixcasError } from '../errors.ts'
import { clipRange, once, type ListedObject, type Locality, type ObjectStore, type PutOptions, type ReadOptions } from './store.ts'

type Verify = NonNullable<ReadOptions['verify']>

export interface LruOptions {
  maxBytes: number
  /** Larger objects pass through uncached (default: an eighth of maxBytes). */
  maxEntrySize?: number
}

/**
 * A byte-bounded in-memory LRU in front of a store. Concurrent reads of one key share
 * one fetch. Ranges are cut from a cached object, or passed through when it is not
 * cached (a range never pulls in a whole object).
 */
export class LruStore implements ObjectStore {
  readonly trusted: boolean
  readonly locality: Locality
  private readonly cache: LRUCache<string, Buffer, Verify | undefined>
  /** Cached objects that passed a read's check (one key has one digest, whoever asks). */
  private readonly checked = new WeakSet<Buffer>()

  constructor(
    readonly name: string,
    private readonly inner: ObjectStore,
    options: LruOptions,
  ) {
    this.trusted = inner.trusted
    this.locality = inner.locality
    this.cache = new LRUCache<string, Buffer, Verify | undefined>({
      maxSize: options.maxBytes,
      maxEntrySize: options.maxEntrySize ?? Math.max(1, Math.floor(options.maxBytes / 8)),
      // Empty objects still take a slot.
      sizeCalculation: (bytes) => Math.max(1, bytes.length),
      // The fetch is shared by every waiter, so no single caller's abort may cancel it.
      // Bytes that fail the caller's check are never cached.
      fetchMethod: async (key, _stale, { signal, context: verify }) => {
        const bytes = await this.inner.get(key, { signal, verify })
        if (bytes !== undefined && verify) {
          if (!verify(bytes)) throw new NixcasError('CORRUPT_OBJECT', `${key} from store "${this.inner.name}" does not match its digest`)
          this.checked.add(bytes)
        }
        return bytes
      },
    })
  }

  async get(key: string, options?: ReadOptions): Promise<Buffer | undefined> {
    const range = options?.range
    const verify = options?.verify
    if (!range) {
      const bytes = await this.cache.fetch(key, { context: verify })
      if (bytes === undefined || !verify || this.checked.has(bytes) || verify(bytes)) return bytes
      // Cached before anyone checked it: drop it and read again, checked.
      this.cache.delete(key)
      return this.cache.fetch(key, { context: verify })
    }
    const cached = this.cache.get(key)
    if (cached === undefined) return this.inner.get(key, options)
    const { start, end } = clipRange(cached.length, range)
    const part = cached.subarray(start, end)
    if (!verify || verify(part)) return part
    this.cache.delete(key)
    return this.inner.get(key, options)
  }

  async stream(key: string, options?: ReadOptions): Promise<AsyncIterable<Uint8Array> | undefined> {
    if (!this.cache.has(key)) return this.inner.stream(key, options)
    const bytes = await this.get(key, options)
    return bytes && once(bytes)
  }

  async head(key: string, options?: { signal?: AbortSignal }): Promise<number | undefined> {
    return this.cache.get(key)?.length ?? this.inner.head(key, options)
  }

  async put(key: string, bytes: Uint8Array, options?: PutOptions): Promise<void> {
    this.cache.delete(key)
    await this.inner.put(key, bytes, options)
    this.cache.set(key, Buffer.from(bytes))
  }

  async delete(key: string): Promise<void> {
    this.cache.delete(key)
    await this.inner.delete(key)
  }

  async deleteMany(keys: readonly string[]): Promise<void> {
    for (const key of keys) this.cache.delete(key)
    await this.inner.deleteMany(keys)
  }

  list(prefix: string): AsyncIterable<ListedObject> {
    return this.inner.list(prefix)
  }

  close(): Promise<void> {
    this.cache.clear()
    return Promise.resolve()
  }
}

import { NixcasError } from '../errors.ts'

/** Part of an object: `length` bytes from `offset`, clipped to the object's end. */
export interface ByteRange {
  offset: number
  length?: number
}

export interface ReadOptions {
  range?: ByteRange
  signal?: AbortSignal
  /**
   * Whether bytes this read returns (the range's bytes, given a range) are intact: the
   * caller's own digest check, offered to the stores that hold copies. A cache drops a near
   * copy that fails it and answers from far, and no store keeps bytes that fail it. Stores
   * with one copy ignore it, so the caller still checks what it gets.
   */
  verify?: (bytes: Uint8Array) => boolean
  /**
   * For a ranged read: the same check for the whole object. With it, a cache that drops a
   * bad copy reads the whole object from far, checks it and writes it back, so a store
   * read only in ranges is repaired too, not just bypassed.
   */
  verifyObject?: (bytes: Uint8Array) => boolean
  /**
   * The caller knows the object under this key never changes (it is named by its digest),
   * so a store may keep it open between ranged reads instead of opening it each time.
   */
  immutable?: boolean
  /**
   * Where a store that reads into a buffer of its own making (a file read by range) may put
   * the bytes instead: the caller's pool. A store may ignore it; the caller knows whether
   * it was used by the buffer it gets back.
   */
  allocate?: (size: number) => Buffer
}

export interface PutOptions {
  signal?: AbortSignal
  /**
   * false: the object need not survive a crash of the machine. Coordination records (a
   * writer's lease, its claims) and hints (dedup index segments) lose their meaning in a
   * crash, so a store that syncs each write to disk may skip that for them. The put is
   * atomic and visible to every reader when it returns either way; stores that make every
   * write durable (S3, GCS) ignore it.
   */
  durable?: boolean
}

export interface ListedObject {
  key: string
  size: number
  /** When the object was last written, in ms since the epoch, by the store's own clock. */
  modified: number
}

/**
 * Where a store's bytes live, for callers that tune their reads (window, concurrency,
 * coalescing): a local disk or memory answers in microseconds, a remote service in
 * milliseconds per request.
 */
export type Locality = 'local' | 'remote'

/**
 * The one contract every backend and wrapper fulfils: opaque keys to bytes.
 * An absent object is an answer (`undefined`), never an error. A range that starts at or
 * past the end yields no bytes. `put` is atomic: readers see the old object or the whole
 * new one, never a part.
 */
export interface ObjectStore {
  /** The instance name from the configuration; it appears in logs, metrics and errors. */
  readonly name: string
  /** True when bytes read back need no digest check (local disk, memory). */
  readonly trusted: boolean
  readonly locality: Locality
  get(key: string, options?: ReadOptions): Promise<Buffer | undefined>
  stream(key: string, options?: ReadOptions): Promise<AsyncIterable<Uint8Array> | undefined>
  head(key: string, options?: { signal?: AbortSignal }): Promise<number | undefined>
  /**
   * Every object nixcas writes is bounded (chunks packs, records, markers), so a put takes
   * bytes: any layer may retry, replicate or cache it without buffering a stream itself.
   * Once the put settled, no layer holds on to `bytes` (one that keeps them copies them):
   * the caller reuses the buffer.
   */
  put(key: string, bytes: Uint8Array, options?: PutOptions): Promise<void>
  delete(key: string): Promise<void>
  /**
   * Deletes many objects (absent ones are no error), in as few requests as the backend
   * allows (S3 DeleteObjects takes 1000 keys a request): what garbage collection sweeps
   * with. Wrappers pass it through to every store `delete` would reach.
   */
  deleteMany(keys: readonly string[]): Promise<void>
  /**
   * The objects whose keys start with `prefix`, in ascending key order (as S3 and GCS list):
   * what lets a listing resume after its last key, or several be merged, holding no more
   * than a page however many objects there are.
   */
  list(prefix: string): AsyncIterable<ListedObject>
  close(): Promise<void>
}

/** Deletes per key, a bounded number at once: `deleteMany` for backends without a batch call. */
export async function deleteEach(store: Pick<ObjectStore, 'delete'>, keys: readonly string[], concurrency = 16): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < keys.length) await store.delete(keys[next++] as string)
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, keys.length) }, worker))
}

/** A store failure: which instance, which operation and key, and whether retrying may help. */
export class StoreError extends NixcasError {
  override readonly store: string
  readonly operation: string

  constructor(store: string, operation: string, key: string, message: string, options: { cause?: unknown; transient: boolean }) {
    super(options.transient ? 'STORE_UNAVAILABLE' : 'STORE_FAILED', `store "${store}": ${operation} ${key}: ${message}`, { ...options, store, key })
    this.name = 'StoreError'
    this.store = store
    this.operation = operation
  }
}

export function isTransient(error: unknown): boolean {
  return error instanceof NixcasError && error.transient
}

const KEY = /^[A-Za-z0-9_-][A-Za-z0-9._-]*(\/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$/
export const KEY_MAX = 512

/**
 * Keys are relative, slash-separated, from a small charset, with no empty, `.` or `..`
 * segment (a segment may not start with a dot): no key can name a path outside a store.
 */
export function checkKey(store: string, key: string): void {
  if (key.length === 0 || key.length > KEY_MAX || !KEY.test(key)) {
    throw new StoreError(store, 'check', JSON.stringify(key).slice(0, 80), 'not a valid object key', { transient: false })
  }
}

/** Prefixes for list() follow the key rules, but may be empty or end in a slash. */
export function checkPrefix(store: string, prefix: string): void {
  if (prefix === '') return
  const trimmed = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix
  checkKey(store, trimmed)
}

/** Where a range starts and ends in an object of `size` bytes (end exclusive). */
export function clipRange(size: number, range: ByteRange | undefined): { start: number; end: number } {
  if (range && (!Number.isSafeInteger(range.offset) || range.offset < 0 || (range.length !== undefined && (!Number.isSafeInteger(range.length) || range.length < 0)))) {
    throw new NixcasError('BAD_RANGE', `invalid range ${JSON.stringify(range)}`)
  }
  const start = Math.min(range?.offset ?? 0, size)
  const end = range?.length === undefined ? size : Math.min(size, start + range.length)
  return { start, end }
}

/**
 * A stream's bytes in one Buffer. With the read's options, a ranged read whose length is
 * known goes into one buffer made up front (the caller's `allocate`, e.g. its pool), copied
 * once as the parts arrive, instead of gathered and joined: a remote read of MiBs made two
 * copies and as much garbage. A stream that ends short gives a view of what came.
 */
export async function toBuffer(source: AsyncIterable<Uint8Array>, options?: Pick<ReadOptions, 'range' | 'allocate'>): Promise<Buffer> {
  const size = options?.range?.length
  const parts: Uint8Array[] = []
  if (size === undefined) {
    for await (const part of source) parts.push(part)
    return Buffer.concat(parts)
  }
  const bytes = options?.allocate ? options.allocate(size) : Buffer.allocUnsafe(size)
  let filled = 0
  for await (const part of source) {
    if (filled + part.length > size) throw new RangeError(`a read of ${size} bytes received more`)
    bytes.set(part, filled)
    filled += part.length
  }
  return filled === size ? bytes : bytes.subarray(0, filled)
}

/** A Buffer view of bytes, without copying. */
export const asBuffer = (bytes: Uint8Array): Buffer => (Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))

/** An async iterable over items already at hand. */
export function iterate<T>(items: Iterable<T>): AsyncIterable<T> {
  const iterator = items[Symbol.iterator]()
  return { [Symbol.asyncIterator]: () => ({ next: () => Promise.resolve(iterator.next()) }) }
}

export function once(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  return iterate(bytes.length > 0 ? [bytes] : [])
}

/**
 * Cuts a range out of a whole-object stream: for servers that answer a Range request
 * with the whole object, as HTTP allows.
 */
export async function* sliceStream(source: AsyncIterable<Uint8Array>, range: ByteRange): AsyncGenerator<Uint8Array> {
  let skip = range.offset
  let left = range.length ?? Infinity
  for await (const chunk of source) {
    if (left <= 0) break
    let part = chunk
    if (skip > 0) {
      const dropped = Math.min(skip, part.length)
      part = part.subarray(dropped)
      skip -= dropped
    }
    if (part.length === 0) continue
    if (part.length > left) part = part.subarray(0, left)
    left -= part.length
    yield part
  }
}

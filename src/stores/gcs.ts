import type { Bucket } from '@google-cloud/storage'
import { Readable } from 'node:stream'
import { StoreError, asBuffer, checkKey, checkPrefix, clipRange, deleteEach, sliceStream, toBuffer, type ListedObject, type ObjectStore, type PutOptions, type ReadOptions } from './store.ts'

export interface GcsStoreOptions {
  bucket: string
  prefix?: string
  project?: string
  /** API endpoint; `STORAGE_EMULATOR_HOST` is honoured when this is unset. */
  apiEndpoint?: string
  keyFilename?: string
}

const TRANSIENT_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ECONNABORTED'])

function statusOf(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | undefined)?.code
  return typeof code === 'number' ? code : undefined
}

function isTransientGcs(error: unknown): boolean {
  const status = statusOf(error)
  if (status !== undefined) return status >= 500 || status === 429 || status === 408
  const code = (error as { code?: unknown } | undefined)?.code
  return typeof code === 'string' && TRANSIENT_CODES.has(code)
}

/** Google Cloud Storage through @google-cloud/storage. */
export class GcsStore implements ObjectStore {
  readonly trusted = false
  readonly locality = 'remote'
  private connecting: Promise<Bucket> | undefined
  private readonly prefix: string

  constructor(
    readonly name: string,
    private readonly options: GcsStoreOptions,
  ) {
    this.prefix = options.prefix ?? ''
  }

  /** The SDK is loaded when a GCS store is first used, never by configurations without one. */
  private bucket(): Promise<Bucket> {
    this.connecting ??= import('@google-cloud/storage').then(({ Storage }) =>
      new Storage({
        projectId: this.options.project,
        apiEndpoint: this.options.apiEndpoint,
        keyFilename: this.options.keyFilename,
        // Retrying belongs to the `retry` wrapper, which logs each attempt by instance name.
        retryOptions: { autoRetry: false },
      }).bucket(this.options.bucket),
    )
    return this.connecting
  }

  private async file(key: string): Promise<ReturnType<Bucket['file']>> {
    checkKey(this.name, key)
    return (await this.bucket()).file(`${this.prefix}${key}`)
  }

  private fail(operation: string, key: string, error: unknown): never {
    const message = error instanceof Error ? error.message : String(error)
    throw new StoreError(this.name, operation, key, message, { cause: error, transient: isTransientGcs(error) })
  }

  async get(key: string, options?: ReadOptions): Promise<Buffer | undefined> {
    const body = await this.stream(key, options)
    return body && toBuffer(body, options)
  }

  async stream(key: string, options?: ReadOptions): Promise<AsyncIterable<Uint8Array> | undefined> {
    const file = await this.file(key)
    const range = options?.range
    if (range) clipRange(Number.MAX_SAFE_INTEGER, range)
    if (range?.length === 0) return (await this.head(key)) === undefined ? undefined : Readable.from([])
    const source = file.createReadStream({
      start: range?.offset,
      end: range?.length === undefined ? undefined : range.offset + range.length - 1,
      // Whole-object reads are checked by crc32c; ranges cannot be.
      validation: range ? false : 'crc32c',
    })
    options?.signal?.addEventListener('abort', () => source.destroy(options.signal?.reason as Error), { once: true })
    let ranged = false
    source.once('response', (response: { headers?: Record<string, unknown> }) => (ranged = response.headers?.['content-range'] !== undefined))
    const iterator = (source as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]()
    // The request starts on the first read: pull one chunk to learn whether the object exists.
    let first: IteratorResult<Uint8Array>
    try {
      first = await iterator.next()
    } catch (error) {
      if (statusOf(error) === 404) return undefined
      if (statusOf(error) === 416) return Readable.from([])
      this.fail('get', key, error)
    }
    const fail = this.fail.bind(this)
    const body = (async function* () {
      if (first.done) return
      yield first.value
      try {
        for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value
      } catch (error) {
        fail('get', key, error)
      }
    })()
    // A server may answer a range with the whole object (the emulator does, past the end).
    return range && !ranged ? sliceStream(body, range) : body
  }

  async head(key: string): Promise<number | undefined> {
    const file = await this.file(key)
    try {
      const [metadata] = await file.getMetadata()
      return Number(metadata.size ?? 0)
    } catch (error) {
      if (statusOf(error) === 404) return undefined
      this.fail('head', key, error)
    }
  }

  async put(key: string, bytes: Uint8Array, options?: PutOptions): Promise<void> {
    const file = await this.file(key)
    try {
      options?.signal?.throwIfAborted()
      // Large objects resumably, so a broken connection does not restart them from zero.
      await file.save(asBuffer(bytes), { resumable: bytes.length > 8 * 1024 * 1024, validation: 'crc32c' })
    } catch (error) {
      this.fail('put', key, error)
    }
  }

  async delete(key: string): Promise<void> {
    const file = await this.file(key)
    try {
      await file.delete({ ignoreNotFound: true })
    } catch (error) {
      if (statusOf(error) !== 404) this.fail('delete', key, error)
    }
  }

  /** The JSON API has no multi-object delete that the client library exposes: one request per key, 16 at once. */
  deleteMany(keys: readonly string[]): Promise<void> {
    return deleteEach(this, keys)
  }

  async *list(prefix: string): AsyncGenerator<ListedObject> {
    checkPrefix(this.name, prefix)
    let pageToken: string | undefined
    do {
      let files, next
      try {
        ;[files, next] = await (await this.bucket()).getFiles({ prefix: `${this.prefix}${prefix}`, autoPaginate: false, maxResults: 1000, pageToken })
      } catch (error) {
        this.fail('list', prefix, error)
      }
      for (const file of files) {
        const modified = Date.parse(String(file.metadata.updated ?? file.metadata.timeCreated ?? ''))
        yield { key: file.name.slice(this.prefix.length), size: Number(file.metadata.size ?? 0), modified: Number.isNaN(modified) ? 0 : modified }
      }
      pageToken = (next as { pageToken?: string } | null | undefined)?.pageToken
    } while (pageToken)
  }

  close(): Promise<void> {
    return Promise.resolve()
  }
}

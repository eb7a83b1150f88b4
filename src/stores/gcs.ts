import { Storage, type Bucket } from '@google-cloud/storage'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { StoreError, checkKey, checkPrefix, clipRange, sliceStream, toBuffer, type Body, type ListedObject, type ObjectStore, type ReadOptions } from './store.ts'

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
  private readonly storage: Storage
  private readonly bucket: Bucket
  private readonly prefix: string

  constructor(
    readonly name: string,
    options: GcsStoreOptions,
  ) {
    this.prefix = options.prefix ?? ''
    this.storage = new Storage({
      projectId: options.project,
      apiEndpoint: options.apiEndpoint,
      keyFilename: options.keyFilename,
      // Retrying belongs to the `retry` wrapper, which logs each attempt by instance name.
      retryOptions: { autoRetry: false },
    })
    this.bucket = this.storage.bucket(options.bucket)
  }

  private file(key: string): ReturnType<Bucket['file']> {
    checkKey(this.name, key)
    return this.bucket.file(`${this.prefix}${key}`)
  }

  private fail(operation: string, key: string, error: unknown): never {
    const message = error instanceof Error ? error.message : String(error)
    throw new StoreError(this.name, operation, key, message, { cause: error, transient: isTransientGcs(error) })
  }

  async get(key: string, options?: ReadOptions): Promise<Buffer | undefined> {
    const body = await this.stream(key, options)
    return body && toBuffer(body)
  }

  async stream(key: string, options?: ReadOptions): Promise<AsyncIterable<Uint8Array> | undefined> {
    const file = this.file(key)
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
    const file = this.file(key)
    try {
      const [metadata] = await file.getMetadata()
      return Number(metadata.size ?? 0)
    } catch (error) {
      if (statusOf(error) === 404) return undefined
      this.fail('head', key, error)
    }
  }

  async put(key: string, body: Body, options?: { signal?: AbortSignal }): Promise<void> {
    const file = this.file(key)
    try {
      if (body instanceof Uint8Array) {
        await file.save(Buffer.from(body.buffer, body.byteOffset, body.byteLength), { resumable: false, validation: 'crc32c' })
      } else {
        await pipeline(body, file.createWriteStream({ resumable: true, validation: 'crc32c' }), { signal: options?.signal })
      }
    } catch (error) {
      this.fail('put', key, error)
    }
  }

  async delete(key: string): Promise<void> {
    const file = this.file(key)
    try {
      await file.delete({ ignoreNotFound: true })
    } catch (error) {
      if (statusOf(error) !== 404) this.fail('delete', key, error)
    }
  }

  async *list(prefix: string): AsyncGenerator<ListedObject> {
    checkPrefix(this.name, prefix)
    let pageToken: string | undefined
    do {
      let files, next
      try {
        ;[files, next] = await this.bucket.getFiles({ prefix: `${this.prefix}${prefix}`, autoPaginate: false, maxResults: 1000, pageToken })
      } catch (error) {
        this.fail('list', prefix, error)
      }
      for (const file of files) yield { key: file.name.slice(this.prefix.length), size: Number(file.metadata.size ?? 0) }
      pageToken = (next as { pageToken?: string } | null | undefined)?.pageToken
    } while (pageToken)
  }

  close(): Promise<void> {
    return Promise.resolve()
  }
}

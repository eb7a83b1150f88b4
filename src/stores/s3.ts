import type * as S3Sdk from '@aws-sdk/client-s3'
import type { S3Client } from '@aws-sdk/client-s3'
import { Readable } from 'node:stream'
import { StoreError, checkKey, checkPrefix, clipRange, sliceStream, toBuffer, type ListedObject, type ObjectStore, type PutOptions, type ReadOptions } from './store.ts'

/** The SDK is large: it is loaded when an S3 store is first used, never by configurations without one. */
type Sdk = typeof S3Sdk
let sdkLoading: Promise<Sdk> | undefined
const loadSdk = (): Promise<Sdk> => (sdkLoading ??= import('@aws-sdk/client-s3'))

export interface S3StoreOptions {
  bucket: string
  prefix?: string
  region?: string
  endpoint?: string
  forcePathStyle?: boolean
  /** Explicit credentials; by default the SDK's usual chain (env, profile, instance role). */
  accessKeyId?: string
  secretAccessKey?: string
  /** Attempts the SDK makes on its own; 1 leaves retrying to a `retry` wrapper, which logs it. */
  sdkAttempts?: number
  /** Objects larger than this are uploaded in parts. */
  partSize?: number
  /** Milliseconds a connection may take to open, and a socket may stay idle mid-request. */
  connectTimeout?: number
  idleTimeout?: number
}

/** Keys one DeleteObjects request may name. */
const S3_DELETE_BATCH = 1000

const TRANSIENT_NAMES = new Set(['SlowDown', 'Throttling', 'ThrottlingException', 'RequestTimeout', 'RequestTimeTooSkewed', 'InternalError', 'ServiceUnavailable', 'TimeoutError'])
const TRANSIENT_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ENOTFOUND', 'ECONNABORTED', 'UND_ERR_SOCKET'])

function statusOf(error: unknown): number | undefined {
  const metadata = (error as { $metadata?: { httpStatusCode?: unknown } } | undefined)?.$metadata
  return typeof metadata?.httpStatusCode === 'number' ? metadata.httpStatusCode : undefined
}

function isTransientS3(error: unknown): boolean {
  const status = statusOf(error)
  if (status !== undefined) return status >= 500 || status === 429 || status === 408
  const named = error as { name?: string; code?: string } | undefined
  if (named?.name === 'AbortError') return false
  // Without an HTTP status the request never got an answer: a network failure.
  return TRANSIENT_NAMES.has(named?.name ?? '') || TRANSIENT_CODES.has(named?.code ?? '') || error instanceof Error
}

const isMissing = (error: unknown): boolean => {
  const name = (error as { name?: string } | undefined)?.name
  return name === 'NoSuchKey' || name === 'NotFound' || statusOf(error) === 404
}

/** Any S3-compatible object store, through @aws-sdk/client-s3. */
export class S3Store implements ObjectStore {
  readonly trusted = false
  readonly locality = 'remote'
  private connecting: Promise<{ sdk: Sdk; client: S3Client }> | undefined
  private readonly bucket: string
  private readonly prefix: string
  private readonly partSize: number

  constructor(
    readonly name: string,
    private readonly options: S3StoreOptions,
  ) {
    this.bucket = options.bucket
    this.prefix = options.prefix ?? ''
    this.partSize = options.partSize ?? 8 * 1024 * 1024
  }

  private connect(): Promise<{ sdk: Sdk; client: S3Client }> {
    this.connecting ??= this.createClient()
    return this.connecting
  }

  private async createClient(): Promise<{ sdk: Sdk; client: S3Client }> {
    const sdk = await loadSdk()
    const options = this.options
    const client = new sdk.S3Client({
      region: options.region ?? 'us-east-1',
      endpoint: options.endpoint,
      forcePathStyle: options.forcePathStyle,
      maxAttempts: options.sdkAttempts ?? 1,
      // A stalled server must end in a (transient) error, never a request that hangs forever.
      requestHandler: { connectionTimeout: options.connectTimeout ?? 5000, requestTimeout: options.idleTimeout ?? 30_000 },
      credentials:
        options.accessKeyId && options.secretAccessKey ? { accessKeyId: options.accessKeyId, secretAccessKey: options.secretAccessKey } : undefined,
    })
    return { sdk, client }
  }

  private key(key: string): string {
    checkKey(this.name, key)
    return `${this.prefix}${key}`
  }

  private fail(operation: string, key: string, error: unknown): never {
    const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error)
    throw new StoreError(this.name, operation, key, message, { cause: error, transient: isTransientS3(error) })
  }

  async get(key: string, options?: ReadOptions): Promise<Buffer | undefined> {
    const body = await this.stream(key, options)
    return body && toBuffer(body, options)
  }

  async stream(key: string, options?: ReadOptions): Promise<AsyncIterable<Uint8Array> | undefined> {
    const objectKey = this.key(key)
    const range = options?.range
    if (range?.length === 0) {
      // S3 cannot express an empty range; a HEAD answers present-or-absent.
      return (await this.head(key, options)) === undefined ? undefined : Readable.from([])
    }
    if (range) clipRange(Number.MAX_SAFE_INTEGER, range)
    const header = range && (range.offset > 0 || range.length !== undefined)
      ? `bytes=${range.offset}-${range.length === undefined ? '' : range.offset + range.length - 1}`
      : undefined
    try {
      const { sdk, client } = await this.connect()
      const response = await client.send(new sdk.GetObjectCommand({ Bucket: this.bucket, Key: objectKey, Range: header }), {
        abortSignal: options?.signal,
      })
      let body: AsyncIterable<Uint8Array> = (response.Body as Readable | undefined) ?? Readable.from([])
      if (header && range) {
        // Some servers ignore a range, or answer a different one: cut what was asked for.
        const servedStart = Number(/^bytes (\d+)-/.exec(response.ContentRange ?? '')?.[1] ?? 0)
        body = sliceStream(body, { offset: range.offset - servedStart, length: range.length })
      }
      const fail = this.fail.bind(this)
      // Failures mid-body (a reset connection) become StoreErrors that say they are transient.
      return (async function* () {
        try {
          yield* body
        } catch (error) {
          fail('get', key, error)
        }
      })()
    } catch (error) {
      if (isMissing(error)) return undefined
      // A range starting at or past the end: the object is there, the range is empty.
      if (statusOf(error) === 416 || (error as { name?: string }).name === 'InvalidRange') return Readable.from([])
      this.fail('get', key, error)
    }
  }

  async head(key: string, options?: { signal?: AbortSignal }): Promise<number | undefined> {
    const objectKey = this.key(key)
    try {
      const { sdk, client } = await this.connect()
      const response = await client.send(new sdk.HeadObjectCommand({ Bucket: this.bucket, Key: objectKey }), { abortSignal: options?.signal })
      return response.ContentLength ?? 0
    } catch (error) {
      if (isMissing(error)) return undefined
      this.fail('head', key, error)
    }
  }

  async put(key: string, bytes: Uint8Array, options?: PutOptions): Promise<void> {
    const objectKey = this.key(key)
    try {
      const { sdk, client } = await this.connect()
      if (bytes.length <= this.partSize) {
        await client.send(new sdk.PutObjectCommand({ Bucket: this.bucket, Key: objectKey, Body: bytes, ContentLength: bytes.length }), {
          abortSignal: options?.signal,
        })
        return
      }
      // Large objects go up in parts, two at a time.
      const { Upload } = await import('@aws-sdk/lib-storage')
      const upload = new Upload({
        client,
        params: { Bucket: this.bucket, Key: objectKey, Body: bytes },
        partSize: this.partSize,
        queueSize: 2,
        leavePartsOnError: false,
      })
      options?.signal?.addEventListener('abort', () => void upload.abort(), { once: true })
      await upload.done()
    } catch (error) {
      this.fail('put', key, error)
    }
  }

  async delete(key: string): Promise<void> {
    const objectKey = this.key(key)
    try {
      const { sdk, client } = await this.connect()
      await client.send(new sdk.DeleteObjectCommand({ Bucket: this.bucket, Key: objectKey }))
    } catch (error) {
      if (!isMissing(error)) this.fail('delete', key, error)
    }
  }

  /** DeleteObjects, 1000 keys a request (the API's limit); a key S3 reports as failed fails the call. */
  async deleteMany(keys: readonly string[]): Promise<void> {
    for (let start = 0; start < keys.length; start += S3_DELETE_BATCH) {
      const batch = keys.slice(start, start + S3_DELETE_BATCH)
      let result
      try {
        const { sdk, client } = await this.connect()
        const objects = batch.map((key) => ({ Key: this.key(key) }))
        result = await client.send(new sdk.DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: objects, Quiet: true } }))
      } catch (error) {
        this.fail('deleteMany', batch[0] ?? '', error)
      }
      const failed = (result.Errors ?? []).find((error) => error.Code !== 'NoSuchKey')
      if (failed) {
        throw new StoreError(this.name, 'deleteMany', failed.Key?.slice(this.prefix.length) ?? '', `${failed.Code ?? 'error'}: ${failed.Message ?? ''}`, {
          transient: TRANSIENT_NAMES.has(failed.Code ?? ''),
        })
      }
    }
  }

  async *list(prefix: string): AsyncGenerator<ListedObject> {
    checkPrefix(this.name, prefix)
    let token: string | undefined
    do {
      let page
      try {
        const { sdk, client } = await this.connect()
        page = await client.send(
          new sdk.ListObjectsV2Command({ Bucket: this.bucket, Prefix: `${this.prefix}${prefix}`, ContinuationToken: token }),
        )
      } catch (error) {
        this.fail('list', prefix, error)
      }
      for (const object of page.Contents ?? []) {
        if (object.Key !== undefined) {
          yield { key: object.Key.slice(this.prefix.length), size: object.Size ?? 0, modified: object.LastModified?.getTime() ?? 0 }
        }
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined
    } while (token)
  }

  async close(): Promise<void> {
    const connected = await this.connecting?.catch(() => undefined)
    connected?.client.destroy()
  }
}

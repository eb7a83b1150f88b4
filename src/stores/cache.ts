import type { Logger } from 'pino'
import { NixcasError } from '../errors.ts'
import { asBuffer, clipRange, once, type ByteRange, type ListedObject, type Locality, type ObjectStore, type PutOptions, type ReadOptions } from './store.ts'

export interface CacheOptions {
  /** Whole objects up to this size read through `stream` are written back to near. */
  writeBackLimit?: number
}

/**
 * Reads near first, else far, writing what far returned back to near; writes go to far,
 * then near. Only correct for immutable keys (chunks, blobs, directories: content
 * addressed), since near is never told when far changes. A failing near is logged and
 * bypassed: it never fails a read.
 *
 * Reads that carry a `verify` check heal the cache: a near copy that fails it is deleted
 * and the read answered from far, and far's bytes are written back only once they pass
 * it, so a corrupt copy is neither served from near again nor copied into it. A ranged
 * read rewrites near from far's whole object when it also carries `verifyObject`.
 */
export class CacheStore implements ObjectStore {
  /** Bytes written back to near came from far, so they are only as trusted as far. */
  readonly trusted: boolean
  /** A miss costs a far read, so callers plan for far's latency. */
  readonly locality: Locality
  private readonly writeBackLimit: number

  constructor(
    readonly name: string,
    private readonly near: ObjectStore,
    private readonly far: ObjectStore,
    private readonly logger: Logger,
    options: CacheOptions = {},
  ) {
    this.trusted = near.trusted && far.trusted
    this.locality = far.locality
    this.writeBackLimit = options.writeBackLimit ?? 64 * 1024 * 1024
  }

  private nearFailed(operation: string, key: string, error: unknown): undefined {
    this.logger.warn({ store: this.name, near: this.near.name, operation, key, err: (error as Error).message }, 'cache near store failed')
    return undefined
  }

  private async writeBack(key: string, bytes: Buffer, options?: PutOptions): Promise<void> {
    await this.near.put(key, bytes, options && { durable: options.durable }).catch((error: unknown) => this.nearFailed('write-back', key, error))
  }

  /** A near copy failed its check: it goes, so the next read (and the write-back) starts clean. */
  private async dropNear(key: string): Promise<void> {
    this.logger.error({ store: this.name, near: this.near.name, key }, 'cache near copy is corrupt: deleted, reading far')
    await this.near.delete(key).catch((error: unknown) => this.nearFailed('delete', key, error))
  }

  async deleteMany(keys: readonly string[]): Promise<void> {
    await this.far.deleteMany(keys)
    await this.near.deleteMany(keys).catch((error: unknown) => this.nearFailed('delete', keys[0] ?? '', error))
  }

  /** The near side, which garbage collection sweeps too: it may hold copies far no longer has. */
  get nearStore(): ObjectStore {
    return this.near
  }

  /** Far's copy failed the check too: nothing is kept, and the read fails naming far. */
  private farCorrupt(key: string): NixcasError {
    this.logger.error({ store: this.name, far: this.far.name, key }, 'cache far copy is corrupt')
    return new NixcasError('CORRUPT_OBJECT', `${key} from store "${this.far.name}" (far side of "${this.name}") does not match its digest`)
  }

  async get(key: string, options?: ReadOptions): Promise<Buffer | undefined> {
    const verify = options?.verify
    const hit = await this.near.get(key, options).catch((error: unknown) => this.nearFailed('get', key, error))
    if (hit !== undefined) {
      if (!verify || verify(hit)) return hit
      await this.dropNear(key)
      if (options?.range && options.verifyObject) return this.rewriteFromFar(key, options.range, options.verifyObject, options.signal)
    }
    const bytes = await this.far.get(key, options)
    if (bytes === undefined) return undefined
    if (verify && !verify(bytes)) throw this.farCorrupt(key)
    // A range is not the object: only whole objects are written back.
    if (!options?.range) await this.writeBack(key, bytes)
    return bytes
  }

  /** After a bad near copy was dropped on a ranged read: far's whole object, checked and written back, and the range cut from it. */
  private async rewriteFromFar(key: string, range: ByteRange, verifyObject: (bytes: Uint8Array) => boolean, signal?: AbortSignal): Promise<Buffer | undefined> {
    const whole = await this.far.get(key, { signal, verify: verifyObject })
    if (whole === undefined) return undefined
    if (!verifyObject(whole)) throw this.farCorrupt(key)
    await this.writeBack(key, whole)
    const { start, end } = clipRange(whole.length, range)
    return whole.subarray(start, end)
  }

  async stream(key: string, options?: ReadOptions): Promise<AsyncIterable<Uint8Array> | undefined> {
    // Checked bytes must be whole before any is handed on: read them as one object.
    if (options?.verify) {
      const bytes = await this.get(key, options)
      return bytes && once(bytes)
    }
    const hit = await this.near.stream(key, options).catch((error: unknown) => this.nearFailed('stream', key, error))
    if (hit !== undefined) return hit
    const source = await this.far.stream(key, options)
    if (source === undefined || options?.range) return source
    return this.tee(key, source)
  }

  /** Passes far's bytes on and keeps a copy for near, up to writeBackLimit. */
  private async *tee(key: string, source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    let copy: Uint8Array[] | null = []
    let size = 0
    for await (const chunk of source) {
      if (copy) {
        size += chunk.length
        if (size > this.writeBackLimit) copy = null
        else copy.push(chunk)
      }
      yield chunk
    }
    if (copy) await this.writeBack(key, Buffer.concat(copy))
  }

  async head(key: string, options?: { signal?: AbortSignal }): Promise<number | undefined> {
    const size = await this.near.head(key, options).catch((error: unknown) => this.nearFailed('head', key, error))
    return size ?? this.far.head(key, options)
  }

  async put(key: string, bytes: Uint8Array, options?: PutOptions): Promise<void> {
    await this.far.put(key, bytes, options)
    await this.writeBack(key, asBuffer(bytes), options)
  }

  async delete(key: string): Promise<void> {
    await this.far.delete(key)
    await this.near.delete(key).catch((error: unknown) => this.nearFailed('delete', key, error))
  }

  list(prefix: string): AsyncIterable<ListedObject> {
    return this.far.list(prefix)
  }

  close(): Promise<void> {
    return Promise.resolve()
  }
}

import { NixcasError, isNixcasError } from '../errors.ts'
import { digestOf, digestsEqual, type Digest } from '../castore/digest.ts'
import { decodeDirectory, directoryDigest } from '../castore/directory.ts'
import { decodeManifest, type ChunkRef } from '../castore/manifest.ts'
import { decodeNarRecord, type NarRecord } from '../castore/nar-record.ts'
import { decodePathInfo, encodePathInfo, type PathInfo } from '../castore/path-info.ts'
import type { DirectoryEntry } from '../castore/node.ts'
import { decodePack, type PackRecord } from '../castore/pack.ts'
import { isCodecMethod, type CodecMethod } from '../codec/methods.ts'
import type { BuildTraceKey, DrvOutputId } from '../nix/drv-output.ts'
import type { NixHash } from '../nix/hash.ts'
import { decodeNixbase32, encodeNixbase32, isNixbase32, nixbase32Length } from '../nix/nixbase32.ts'
import type { StorePath } from '../nix/store-path.ts'
import { asBuffer, type ObjectStore, type ReadOptions } from '../stores/store.ts'
import { keys } from './keys.ts'

export interface UploadRecord {
  narHash: NixHash
  /** Set when the upload's bytes were in another compression than its name says. */
  compression?: CodecMethod
}

/**
 * Typed views over one composed store: chunks, manifests, directories, closure packs,
 * PathInfo and the narhash index. Content-addressed objects read from a store that is not
 * trusted are checked against their digest, so a corrupted object is never served.
 */
export class Cas {
  readonly verify: boolean

  constructor(readonly store: ObjectStore) {
    this.verify = !store.trusted
  }

  /**
   * Reads an object that `parse` checks (against its digest) and decodes, throwing
   * CORRUPT_OBJECT when it is not intact. The check goes down with the read as `verify`,
   * so a cache drops a bad near copy and answers from far instead; what comes back is
   * checked here unless it is the very object that already passed.
   */
  private async readChecked<T>(key: string, parse: (bytes: Buffer) => T, options: Pick<ReadOptions, 'signal' | 'range' | 'verifyObject' | 'immutable' | 'allocate'> = {}): Promise<T | undefined> {
    let passed: { bytes: Uint8Array; value: T } | undefined
    const verify = (bytes: Uint8Array): boolean => {
      try {
        passed = { bytes, value: parse(asBuffer(bytes)) }
        return true
      } catch (error) {
        if (isNixcasError(error, 'CORRUPT_OBJECT')) return false
        throw error
      }
    }
    const bytes = await this.store.get(key, { ...options, verify })
    if (bytes === undefined) return undefined
    return passed !== undefined && passed.bytes === bytes ? passed.value : parse(bytes)
  }

  private async required<T>(key: string, what: string, parse: (bytes: Buffer) => T, options?: Pick<ReadOptions, 'signal' | 'range' | 'verifyObject' | 'immutable' | 'allocate'>): Promise<T> {
    const value = await this.readChecked(key, parse, options)
    if (value === undefined) throw new NixcasError('MISSING_OBJECT', `${what} ${key} is missing from store "${this.store.name}"`)
    return value
  }

  /** Decodes an object read from the store; a malformed one is CORRUPT_OBJECT naming the store and key. */
  private decoded<T>(key: string, decode: () => T): T {
    try {
      return decode()
    } catch (error) {
      if (!isNixcasError(error, 'CORRUPT_OBJECT') || error.key !== undefined) throw error
      throw new NixcasError('CORRUPT_OBJECT', `${key} in store "${this.store.name}": ${error.message}`, { cause: error, store: this.store.name, key })
    }
  }

  /** A chunk's bytes, checked against its size (when known) and, from a store that is not trusted, its digest. */
  async getChunk(digest: Digest, size?: number, signal?: AbortSignal): Promise<Buffer> {
    const key = keys.chunk(digest)
    return this.required(key, 'chunk', (bytes) => {
      if ((size !== undefined && bytes.length !== size) || (this.verify && !digestsEqual(digestOf(bytes), digest))) {
        throw new NixcasError('CORRUPT_OBJECT', `chunk ${key} from store "${this.store.name}" does not match its digest`, { store: this.store.name, key })
      }
      return bytes
    }, { signal })
  }

  async hasChunk(digest: Digest, signal?: AbortSignal): Promise<boolean> {
    return (await this.store.head(keys.chunk(digest), { signal })) !== undefined
  }

  putChunk(digest: Digest, bytes: Uint8Array, signal?: AbortSignal): Promise<void> {
    return this.store.put(keys.chunk(digest), bytes, { signal })
  }

  /** A blob's manifest: it has no digest of its own, so it is checked for its form and the size its chunks add up to. */
  async getManifest(blob: Digest, size: number, signal?: AbortSignal): Promise<ChunkRef[]> {
    const key = keys.manifest(blob)
    return this.required(key, 'blob manifest', (bytes) => this.decoded(key, () => decodeManifest(bytes, size)), { signal })
  }

  putManifest(blob: Digest, encoding: Uint8Array): Promise<void> {
    return this.store.put(keys.manifest(blob), encoding)
  }

  /** A directory, always checked against its digest (directories are small). */
  async getDirectory(digest: Digest, signal?: AbortSignal): Promise<DirectoryEntry[]> {
    const key = keys.directory(digest)
    return this.required(key, 'directory', (bytes) => {
      if (!digestsEqual(directoryDigest(bytes), digest)) {
        throw new NixcasError('CORRUPT_OBJECT', `directory ${key} from store "${this.store.name}" does not match its digest`, { store: this.store.name, key })
      }
      return this.decoded(key, () => decodeDirectory(bytes))
    }, { signal })
  }

  putDirectory(digest: Digest, encoding: Uint8Array): Promise<void> {
    return this.store.put(keys.directory(digest), encoding)
  }

  /** The closure pack of a root directory, or undefined when there is none; its directories are checked against their digests. */
  async getPack(root: Digest, signal?: AbortSignal): Promise<PackRecord[] | undefined> {
    const key = keys.closurePack(root)
    return this.readChecked(key, (bytes) => this.decoded(key, () => decodePack(bytes)), { signal })
  }

  putPack(root: Digest, encoding: Uint8Array): Promise<void> {
    return this.store.put(keys.closurePack(root), encoding)
  }

  async getPathInfo(storePathHash: string): Promise<PathInfo | undefined> {
    const key = keys.pathInfo(storePathHash)
    const bytes = await this.store.get(key)
    return bytes && this.decoded(key, () => decodePathInfo(bytes))
  }

  putPathInfo(storePathHash: string, info: PathInfo): Promise<void> {
    return this.store.put(keys.pathInfo(storePathHash), encodePathInfo(info))
  }

  /**
   * The record of the NAR with this hash (a version 1 index entry carries only its root).
   * Its digest is the NAR's sha256, known only once the NAR is rendered, so what is checked
   * on reading it is its form.
   */
  async getNarRecord(narHash: NixHash, signal?: AbortSignal): Promise<NarRecord | undefined> {
    const key = keys.narRecord(narHash)
    return this.readChecked(key, (bytes) => this.decoded(key, () => decodeNarRecord(bytes)), { signal })
  }

  async hasNarRecord(narHash: NixHash): Promise<boolean> {
    return (await this.store.head(keys.narRecord(narHash))) !== undefined
  }

  /** Publishes a NAR: once this write lands, the NAR is visible. */
  putNarRecord(narHash: NixHash, encoding: Uint8Array): Promise<void> {
    return this.store.put(keys.narRecord(narHash), encoding)
  }

  putDataPack(digest: Digest, bytes: Uint8Array, signal?: AbortSignal): Promise<void> {
    return this.store.put(keys.dataPack(digest), bytes, { signal })
  }

  /**
   * `length` bytes of a data pack from `offset`, holding `chunks` back to back: each is
   * checked against its digest when the store is not trusted. A pack that is missing or
   * shorter than its record says is MISSING_OBJECT or CORRUPT_OBJECT, never short bytes.
   */
  async readPackRun(pack: Digest, offset: number, length: number, chunks: readonly { digest: Digest; size: number; at: number }[], signal?: AbortSignal, allocate?: (size: number) => Buffer): Promise<Buffer> {
    const key = keys.dataPack(pack)
    // The whole pack is checked by its key (only a cache repairing its copy reads it whole).
    const verifyObject = (bytes: Uint8Array): boolean => digestsEqual(digestOf(bytes), pack)
    return this.required(key, 'data pack', (bytes) => {
      if (bytes.length !== length) throw new NixcasError('CORRUPT_OBJECT', `data pack ${key} in store "${this.store.name}" is shorter than its records say`, { store: this.store.name, key })
      if (this.verify) {
        for (const chunk of chunks) {
          if (!digestsEqual(digestOf(bytes.subarray(chunk.at, chunk.at + chunk.size)), chunk.digest)) {
            throw new NixcasError('CORRUPT_OBJECT', `a chunk in data pack ${key} from store "${this.store.name}" does not match its digest`, { store: this.store.name, key })
          }
        }
      }
      return bytes
    }, { signal, range: { offset, length }, verifyObject, immutable: true, allocate })
  }

  /** A hint for dedup, written after the packs it names are stored: it need not survive a crash. */
  putIndexSegment(name: string, encoding: Uint8Array): Promise<void> {
    return this.store.put(keys.indexSegment(name), encoding, { durable: false })
  }

  async getIndexSegment(key: string, signal?: AbortSignal): Promise<Buffer | undefined> {
    if (!key.startsWith(keys.indexSegments)) throw new NixcasError('INTERNAL', `${key} is not an index segment`)
    return this.store.get(key, { signal })
  }

  listIndexSegments(): AsyncIterable<{ key: string; size: number; modified: number }> {
    return this.store.list(keys.indexSegments)
  }

  /**
   * The NAR an uploaded file name (`<stem>.nar[.xz|…]`, validated by the caller) became, and
   * the compression its bytes had when the name alone does not say it (gzip under `.nar`).
   * The record is the NAR hash in nixbase32, then optionally a space and the method.
   */
  async getUpload(stem: string, fileName: string): Promise<UploadRecord | undefined> {
    const key = keys.upload(stem, fileName)
    const bytes = await this.store.get(key)
    if (bytes === undefined) return undefined
    const [hash = '', compression, ...rest] = bytes.toString('latin1').split(' ')
    if (!isNixbase32(hash) || hash.length !== nixbase32Length(32) || rest.length > 0 || (compression !== undefined && !isCodecMethod(compression))) {
      throw new NixcasError('CORRUPT_OBJECT', `upload record ${key} is malformed`, { store: this.store.name, key })
    }
    return { narHash: { algorithm: 'sha256', digest: decodeNixbase32(hash, 32) }, compression }
  }

  putUpload(stem: string, fileName: string, record: UploadRecord): Promise<void> {
    const text = encodeNixbase32(record.narHash.digest) + (record.compression === undefined ? '' : ` ${record.compression}`)
    return this.store.put(keys.upload(stem, fileName), Buffer.from(text, 'latin1'))
  }

  /** A part of a build log's stored bytes; the caller checks it against its digest (BuildLogs knows when to). */
  getLog(digest: Digest, signal?: AbortSignal): Promise<Buffer | undefined> {
    return this.store.get(keys.log(digest), { signal })
  }

  async hasLog(digest: Digest): Promise<boolean> {
    return (await this.store.head(keys.log(digest))) !== undefined
  }

  putLog(digest: Digest, bytes: Uint8Array, signal?: AbortSignal): Promise<void> {
    return this.store.put(keys.log(digest), bytes, { signal })
  }

  getLogRecord(drv: StorePath): Promise<Buffer | undefined> {
    return this.store.get(keys.logName(drv))
  }

  putLogRecord(drv: StorePath, record: Uint8Array): Promise<void> {
    return this.store.put(keys.logName(drv), record)
  }

  /** A realisation (Nix ≤ 2.34) as it is served. */
  async getRealisation(id: DrvOutputId): Promise<string | undefined> {
    return (await this.store.get(keys.realisation(id)))?.toString('utf8')
  }

  putRealisation(id: DrvOutputId, text: string): Promise<void> {
    return this.store.put(keys.realisation(id), Buffer.from(text))
  }

  /** A build trace entry (Nix ≥ 2.35) as it is served. */
  async getBuildTrace(key: BuildTraceKey): Promise<string | undefined> {
    return (await this.store.get(keys.buildTrace(key)))?.toString('utf8')
  }

  putBuildTrace(key: BuildTraceKey, text: string): Promise<void> {
    return this.store.put(keys.buildTrace(key), Buffer.from(text))
  }

  /** A debuginfo index entry as it is served. */
  async getDebugInfo(buildId: string): Promise<string | undefined> {
    return (await this.store.get(keys.debugInfo(buildId)))?.toString('utf8')
  }

  putDebugInfo(buildId: string, text: string): Promise<void> {
    return this.store.put(keys.debugInfo(buildId), Buffer.from(text))
  }
}

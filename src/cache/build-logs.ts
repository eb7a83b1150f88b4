import { unlimited, type ByteBudget } from '../budget.ts'
import type { Cas } from '../cas/cas.ts'
import { DigestStream, digestHex, digestOf, digestsEqual, type Digest } from '../castore/digest.ts'
import { decode } from '../codec/decode.ts'
import { encode } from '../codec/encode.ts'
import type { CodecMethod } from '../codec/methods.ts'
import { NixcasError } from '../errors.ts'
import { parseLogName } from '../nix/log.ts'

/**
 * Build logs (`nix store copy-log --to`, `nix log --store`): `log/<drv basename>`.
 *
 * A log is stored compressed with brotli, the one encoding that browsers and `curl
 * --compressed` all accept, so most reads send the stored bytes as they are; other
 * clients get them decoded on the fly. The compressed stream is cut into parts stored
 * under the digest of their bytes, so an upload holds one part at a time (counted in the
 * shared upload budget) and the same log uploaded for several derivations is stored once.
 * The derivation's name points at the parts through a small record, which also carries the
 * digest of the log text: whatever is decoded is checked against it.
 */
export const STORED_LOG_ENCODING = 'br' satisfies CodecMethod
/** Good on text and still fast: logs are written once and read rarely. */
const STORED_LOG_LEVEL = 6
/** Compressed bytes per stored part. */
const PART_SIZE = 4 * 1024 * 1024
const RECORD_VERSION = 1

export interface LogPart {
  digest: Digest
  size: number
}

export interface LogRecord {
  /** BLAKE3 of the log text. */
  digest: Digest
  /** Bytes of the log text. */
  size: number
  /** The compressed stream, in order. */
  parts: LogPart[]
  /** Bytes stored: the parts together. */
  storedSize: number
}

function encodeRecord(record: LogRecord): Buffer {
  const parts = record.parts.map((part) => ({ digest: digestHex(part.digest), size: part.size }))
  return Buffer.from(JSON.stringify({ v: RECORD_VERSION, digest: digestHex(record.digest), size: record.size, encoding: STORED_LOG_ENCODING, parts }))
}

const isHexDigest = (value: unknown): value is string => typeof value === 'string' && /^[0-9a-f]{64}$/.test(value)
const isSize = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 0

export function decodeLogRecord(bytes: Buffer, what: string): LogRecord {
  let value: Record<string, unknown>
  try {
    value = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>
  } catch (cause) {
    throw new NixcasError('CORRUPT_OBJECT', `${what} is malformed`, { cause })
  }
  const { v, digest, size, encoding, parts } = value
  if (v !== RECORD_VERSION || !isHexDigest(digest) || !isSize(size) || encoding !== STORED_LOG_ENCODING || !Array.isArray(parts) || parts.length === 0) {
    throw new NixcasError('CORRUPT_OBJECT', `${what} is malformed`)
  }
  const decoded = (parts as unknown[]).map((part) => {
    const { digest: partDigest, size: partSize } = (part ?? {}) as Record<string, unknown>
    if (!isHexDigest(partDigest) || !isSize(partSize)) throw new NixcasError('CORRUPT_OBJECT', `${what} is malformed`)
    return { digest: Buffer.from(partDigest, 'hex'), size: partSize }
  })
  return { digest: Buffer.from(digest, 'hex'), size, parts: decoded, storedSize: decoded.reduce((sum, part) => sum + part.size, 0) }
}

async function* concatenated(first: Uint8Array, rest: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  yield first
  yield* rest
}

export class BuildLogs {
  constructor(
    private readonly cas: Cas,
    /** Largest log accepted, counted uncompressed: the bound a route reads an upload with. */
    readonly maxSize: number,
    /** Shared with every upload: the part being compressed counts in it until it is written. */
    private readonly budget: ByteBudget = unlimited(),
  ) {}

  /** Stores a log from its (already decoded and bounded) text, compressing and hashing as it arrives. */
  async put(name: string, text: AsyncIterable<Uint8Array>, signal?: AbortSignal): Promise<LogRecord> {
    const drv = parseLogName(name)
    const hasher = new DigestStream()
    let size = 0
    async function* tapped(): AsyncGenerator<Uint8Array> {
      for await (const chunk of text) {
        hasher.update(chunk)
        size += chunk.length
        yield chunk
      }
    }
    const parts: LogPart[] = []
    let pending: Uint8Array[] = []
    let held = 0
    const writePart = async (): Promise<void> => {
      const bytes = Buffer.concat(pending)
      const digest = digestOf(bytes)
      if (!(await this.cas.hasLog(digest))) await this.cas.putLog(digest, bytes, signal)
      parts.push({ digest, size: bytes.length })
      pending = []
      this.budget.release(held)
      held = 0
    }
    try {
      for await (const piece of encode(tapped(), STORED_LOG_ENCODING, { signal, level: STORED_LOG_LEVEL })) {
        // Never wait while holding a part: write it first, then wait holding nothing.
        if (held === 0 || !this.budget.tryAcquire(piece.length, false)) {
          if (held > 0) await writePart()
          await this.budget.acquire(piece.length, true, signal)
        }
        held += piece.length
        pending.push(piece)
        if (held >= PART_SIZE) await writePart()
      }
      if (held > 0 || parts.length === 0) await writePart()
    } finally {
      this.budget.release(held)
    }
    const record: LogRecord = { digest: hasher.digest(), size, parts, storedSize: parts.reduce((sum, part) => sum + part.size, 0) }
    await this.cas.putLogRecord(drv, encodeRecord(record))
    return record
  }

  /** What is known of a log without reading it (for HEAD). */
  async record(name: string): Promise<LogRecord | undefined> {
    const drv = parseLogName(name)
    const bytes = await this.cas.getLogRecord(drv)
    return bytes && decodeLogRecord(bytes, `log record of ${name}`)
  }

  private async part(part: LogPart, signal?: AbortSignal): Promise<Buffer> {
    const bytes = await this.cas.getLog(part.digest, signal)
    if (bytes === undefined) throw new NixcasError('MISSING_OBJECT', `build log part ${digestHex(part.digest)} is missing from store "${this.cas.store.name}"`)
    if (bytes.length !== part.size || (this.cas.verify && !digestsEqual(digestOf(bytes), part.digest))) {
      throw new NixcasError('CORRUPT_OBJECT', `build log part ${digestHex(part.digest)} from store "${this.cas.store.name}" does not match its digest`)
    }
    return bytes
  }

  private async *laterParts(record: LogRecord, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
    for (const part of record.parts.slice(1)) yield await this.part(part, signal)
  }

  /**
   * The stored (brotli) bytes of a log, part by part. The first part is read before this
   * returns, so a log that is missing or damaged is an error status, not a cut response.
   */
  async stored(record: LogRecord, signal?: AbortSignal): Promise<AsyncIterable<Uint8Array>> {
    const [first] = record.parts
    if (first === undefined) throw new NixcasError('CORRUPT_OBJECT', 'a build log record without parts')
    return concatenated(await this.part(first, signal), this.laterParts(record, signal))
  }

  /**
   * The log text, decoded as it is read and checked against the record's digest and size.
   * The last piece is held back until the digest is known, so a wrong log never arrives whole.
   */
  async text(record: LogRecord, signal?: AbortSignal): Promise<AsyncIterable<Uint8Array>> {
    return this.checkedText(record, await this.stored(record, signal), signal)
  }

  private async *checkedText(record: LogRecord, stored: AsyncIterable<Uint8Array>, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
    const hasher = new DigestStream()
    let size = 0
    let held: Uint8Array | undefined
    const corrupt = (cause?: unknown): NixcasError => new NixcasError('CORRUPT_OBJECT', `the stored log ${digestHex(record.digest)} does not match its digest`, { cause })
    try {
      for await (const chunk of decode(stored, STORED_LOG_ENCODING, { signal, maxOutputBytes: record.size })) {
        hasher.update(chunk)
        size += chunk.length
        if (held !== undefined) yield held
        held = chunk
      }
    } catch (error) {
      throw signal?.aborted || (error instanceof NixcasError && error.code !== 'BAD_REQUEST' && error.code !== 'TOO_LARGE') ? error : corrupt(error)
    }
    if (size !== record.size || !digestsEqual(hasher.digest(), record.digest)) throw corrupt()
    if (held !== undefined) yield held
  }
}

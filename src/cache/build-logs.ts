import type { Cas } from '../cas/cas.ts'
import { DigestStream, digestHex, digestsEqual, type Digest } from '../castore/digest.ts'
import { decode } from '../codec/decode.ts'
import { encode } from '../codec/encode.ts'
import type { CodecMethod } from '../codec/methods.ts'
import { NixcasError } from '../errors.ts'
import { parseLogName } from '../nix/log.ts'

/**
 * Build logs (`nix store copy-log --to`, `nix log --store`): `log/<drv basename>`.
 *
 * A log is stored once per content, compressed, under the BLAKE3 digest of its text; the
 * derivation's name points at it through a small record. Brotli is the stored form: it is
 * what browsers and `curl --compressed` accept, so most reads send the stored bytes as
 * they are (`Content-Encoding: br`); other clients get them decoded on the fly.
 */
export const STORED_LOG_ENCODING = 'br' satisfies CodecMethod
/** Good on text and still fast: logs are written once and read rarely. */
const STORED_LOG_LEVEL = 6
const RECORD_VERSION = 1

export interface LogRecord {
  digest: Digest
  /** Bytes of the log text. */
  size: number
  /** Bytes stored (brotli). */
  storedSize: number
}

function encodeRecord(record: LogRecord): Buffer {
  return Buffer.from(JSON.stringify({ v: RECORD_VERSION, digest: digestHex(record.digest), size: record.size, storedSize: record.storedSize, encoding: STORED_LOG_ENCODING }))
}

function decodeRecord(bytes: Buffer, what: string): LogRecord {
  try {
    const value = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>
    const { v, digest, size, storedSize, encoding } = value
    if (v === RECORD_VERSION && typeof digest === 'string' && /^[0-9a-f]{64}$/.test(digest) && Number.isSafeInteger(size) && Number.isSafeInteger(storedSize) && encoding === STORED_LOG_ENCODING) {
      return { digest: Buffer.from(digest, 'hex'), size: size as number, storedSize: storedSize as number }
    }
  } catch (cause) {
    throw new NixcasError('CORRUPT_OBJECT', `${what} is malformed`, { cause })
  }
  throw new NixcasError('CORRUPT_OBJECT', `${what} is malformed`)
}

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes
}

export interface StoredLog {
  record: LogRecord
  /** The stored (brotli) bytes. */
  bytes: Buffer
}

export class BuildLogs {
  constructor(
    private readonly cas: Cas,
    /** Largest log accepted, counted uncompressed: the bound a route reads an upload with. */
    readonly maxSize: number,
  ) {}

  /**
   * Stores a log from its (already decoded and bounded) text. The text is hashed and
   * compressed as it arrives; only the compressed form is held until it is written.
   */
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
    const compressed: Uint8Array[] = []
    for await (const piece of encode(tapped(), STORED_LOG_ENCODING, { signal, level: STORED_LOG_LEVEL })) compressed.push(piece)
    const bytes = Buffer.concat(compressed)
    const record: LogRecord = { digest: hasher.digest(), size, storedSize: bytes.length }
    if (!(await this.cas.hasLog(record.digest))) await this.cas.putLog(record.digest, bytes, signal)
    await this.cas.putLogRecord(drv, encodeRecord(record))
    return record
  }

  /** What is known of a log without reading it (for HEAD). */
  async record(name: string): Promise<LogRecord | undefined> {
    const drv = parseLogName(name)
    const bytes = await this.cas.getLogRecord(drv)
    return bytes && decodeRecord(bytes, `log record of ${name}`)
  }

  async get(name: string, signal?: AbortSignal): Promise<StoredLog | undefined> {
    const record = await this.record(name)
    if (record === undefined) return undefined
    const bytes = await this.cas.getLog(record.digest, signal)
    if (bytes === undefined) throw new NixcasError('MISSING_OBJECT', `the log of ${name} (${digestHex(record.digest)}) is missing from the store`)
    if (bytes.length !== record.storedSize) throw new NixcasError('CORRUPT_OBJECT', `the log of ${name} (${digestHex(record.digest)}) is not the size its record says`)
    return { record, bytes }
  }

  /**
   * The log text of stored bytes, decoded as it is read and checked against the record's
   * digest and size at the end: a stored log that was altered fails the response instead
   * of completing it.
   */
  async *text(log: StoredLog, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
    const hasher = new DigestStream()
    let size = 0
    const corrupt = (cause?: unknown): NixcasError => new NixcasError('CORRUPT_OBJECT', `the stored log ${digestHex(log.record.digest)} does not match its digest`, { cause })
    // The last piece is held back until the digest is known, so a wrong log never arrives whole.
    let held: Uint8Array | undefined
    try {
      for await (const chunk of decode(once(log.bytes), STORED_LOG_ENCODING, { signal, maxOutputBytes: log.record.size })) {
        hasher.update(chunk)
        size += chunk.length
        if (held !== undefined) yield held
        held = chunk
      }
    } catch (error) {
      throw signal?.aborted ? error : corrupt(error)
    }
    if (size !== log.record.size || !digestsEqual(hasher.digest(), log.record.digest)) throw corrupt()
    if (held !== undefined) yield held
  }

  /**
   * Checks stored bytes before they are sent as they are, when they come from a store
   * that is not trusted: decoding a log is cheap next to sending a wrong one.
   */
  async verify(log: StoredLog, signal?: AbortSignal): Promise<void> {
    if (!this.cas.verify) return
    for await (const chunk of this.text(log, signal)) void chunk
  }
}

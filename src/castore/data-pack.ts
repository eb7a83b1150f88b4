import { NixcasError } from '../errors.ts'
import { DIGEST_SIZE, digestOf, type Digest } from './digest.ts'

/**
 * A data pack: many chunks in one object, so a NAR costs a few objects per tens of MiB
 * instead of one per file, and a reader fetches runs of adjacent chunks with one ranged
 * read. Version 1 (little-endian):
 *
 *   chunk bytes, concatenated (chunk i starts where chunk i-1 ends)
 *   trailer: count × { digest (32 bytes), length u32 }, count u32, trailer length u32, magic "NCK1"
 *
 * The trailer makes a pack self-describing (verify, garbage collection and index rebuilds
 * read it with one ranged read from the end); readers that already know where a chunk is
 * never read it. A pack's key is BLAKE3 of the whole object.
 */
export const DATA_PACK_MAGIC = Buffer.from('NCK1')
const ENTRY = DIGEST_SIZE + 4
const FOOTER = 4 + 4 + DATA_PACK_MAGIC.length
/** Trailer room a growing builder keeps: the entries of 1,800 chunks, a 16 MiB pack of 9 KiB chunks. */
const TRAILER_ROOM = 64 * 1024

/** The buffer a pack of `capacity` bytes of chunks is filled in: room for its trailer too. */
export const packBufferBytes = (capacity: number): number => Math.max(capacity, 64 * 1024) + TRAILER_ROOM

export interface PackEntry {
  readonly digest: Digest
  readonly offset: number
  readonly length: number
}

/**
 * Collects chunks for one pack. Chunks are copied in: what arrives may be a view of a
 * larger decoded buffer, which must not stay alive just because a small chunk points into it.
 */
export class PackBuilder {
  private buffer: Buffer
  private readonly entries: PackEntry[] = []
  private bytes = 0

  /** With `buffer` (at least `packBufferBytes(capacity)` long), chunks go there instead of a buffer of its own. */
  constructor(capacity: number, buffer?: Buffer) {
    this.buffer = buffer ?? Buffer.allocUnsafe(packBufferBytes(capacity))
  }

  get size(): number {
    return this.bytes
  }

  get count(): number {
    return this.entries.length
  }

  /** Adds a chunk; returns where it will be in the pack. */
  add(digest: Digest, chunk: Uint8Array): number {
    const offset = this.bytes
    if (offset + chunk.length > this.buffer.length) {
      // Room for the trailer of a pack of average chunks too, so `seal` seldom copies.
      const grown = Buffer.allocUnsafe(Math.max(offset + chunk.length, this.buffer.length * 2) + TRAILER_ROOM)
      this.buffer.copy(grown, 0, 0, offset)
      this.buffer = grown
    }
    this.buffer.set(chunk, offset)
    this.entries.push({ digest, offset, length: chunk.length })
    this.bytes += chunk.length
    return offset
  }

  /**
   * The pack's bytes and its digest. The trailer is written after the chunks in the same
   * buffer when it fits (the pack's bytes are not copied again); the builder is spent.
   */
  seal(): { digest: Digest; bytes: Buffer; entries: readonly PackEntry[] } {
    const trailerSize = this.entries.length * ENTRY + FOOTER
    let bytes = this.buffer
    if (this.bytes + trailerSize > bytes.length) {
      bytes = Buffer.allocUnsafe(this.bytes + trailerSize)
      this.buffer.copy(bytes, 0, 0, this.bytes)
    }
    bytes = bytes.subarray(0, this.bytes + trailerSize)
    let offset = this.bytes
    for (const entry of this.entries) {
      offset += entry.digest.copy(bytes, offset)
      offset = bytes.writeUInt32LE(entry.length, offset)
    }
    offset = bytes.writeUInt32LE(this.entries.length, offset)
    offset = bytes.writeUInt32LE(trailerSize, offset)
    DATA_PACK_MAGIC.copy(bytes, offset)
    return { digest: digestOf(bytes), bytes, entries: this.entries }
  }
}

/** The trailer length a pack ends with, from its last FOOTER bytes. */
export function trailerLength(footer: Uint8Array): number {
  const data = Buffer.from(footer.buffer, footer.byteOffset, footer.byteLength)
  if (data.length < FOOTER || !data.subarray(data.length - 4).equals(DATA_PACK_MAGIC)) throw new NixcasError('CORRUPT_OBJECT', 'data pack: bad magic')
  return data.readUInt32LE(data.length - 8)
}

/** The chunks a pack holds, from its trailer (the last `trailerLength` bytes) and the pack's size. */
export function decodePackTrailer(trailer: Uint8Array, packSize: number): PackEntry[] {
  const data = Buffer.from(trailer.buffer, trailer.byteOffset, trailer.byteLength)
  const corrupt = (message: string): never => {
    throw new NixcasError('CORRUPT_OBJECT', `data pack: ${message}`)
  }
  if (trailerLength(data) !== data.length) corrupt('trailer length disagrees')
  const count = data.readUInt32LE(data.length - FOOTER)
  if (count * ENTRY + FOOTER !== data.length) corrupt('entry count disagrees with the trailer length')
  const entries: PackEntry[] = []
  let position = 0
  for (let index = 0; index < count; index++) {
    const at = index * ENTRY
    const length = data.readUInt32LE(at + DIGEST_SIZE)
    entries.push({ digest: Buffer.from(data.subarray(at, at + DIGEST_SIZE)), offset: position, length })
    position += length
  }
  if (position + data.length !== packSize) corrupt('chunks and trailer do not add up to the pack size')
  return entries
}

export const PACK_FOOTER_SIZE = FOOTER

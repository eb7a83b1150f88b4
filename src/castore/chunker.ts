import { NixcasError } from '../errors.ts'
import { GEAR, gearScan, scannedHash } from './gear-scan.ts'

/**
 * FastCDC with normalised chunking (Xia et al., 2020) over a 32-bit gear hash.
 * Cut points depend only on the bytes since the previous cut, so the same contents are
 * always cut the same way, however they arrive.
 */
export interface ChunkSizes {
  min: number
  avg: number
  max: number
}

/**
 * 64 KiB / 256 KiB / 1 MiB: chosen by `npm run bench -- chunking`, which weighs dedup
 * between versions of a tree against objects stored and round trips per NAR (see README).
 */
export const DEFAULT_CHUNK_SIZES: ChunkSizes = { min: 64 * 1024, avg: 256 * 1024, max: 1024 * 1024 }

/** A mask of the top `bits` bits: they depend on the last 32 bytes, not just the last few. */
const topBits = (bits: number): number => (bits >= 32 ? -1 : ~((1 << (32 - bits)) - 1))

export function checkChunkSizes(sizes: ChunkSizes): void {
  const { min, avg, max } = sizes
  const powerOfTwo = (value: number): boolean => Number.isSafeInteger(value) && value > 0 && (value & (value - 1)) === 0
  if (!powerOfTwo(avg) || avg < 256 || avg > 2 ** 28) throw new NixcasError('BAD_CONFIG', `chunk avg ${avg} must be a power of two from 256 to 256 MiB`)
  if (!Number.isSafeInteger(min) || !Number.isSafeInteger(max) || !(min >= 64 && min < avg && avg < max)) {
    throw new NixcasError('BAD_CONFIG', `chunk sizes must satisfy 64 <= min < avg < max, got ${min}/${avg}/${max}`)
  }
}

/** Finds the length of the next chunk of `data[start..end)`; `end` is the stream's end or a full window. */
export function cutPoint(data: Uint8Array, start: number, end: number, sizes: ChunkSizes): number {
  const length = end - start
  if (length <= sizes.min) return length
  const limit = Math.min(length, sizes.max)
  const normal = Math.min(sizes.avg, limit)
  const bits = Math.log2(sizes.avg)
  // Normalised chunking: harder to cut before avg, easier after, so sizes cluster round avg.
  const maskSmall = topBits(bits + 2)
  const maskLarge = topBits(bits - 2)
  let hash = 0
  let index = start + sizes.min
  const normalEnd = start + normal
  const limitEnd = start + limit
  for (; index < normalEnd; index++) {
    hash = ((hash << 1) + (GEAR[data[index] as number] as number)) | 0
    if ((hash & maskSmall) === 0) return index + 1 - start
  }
  for (; index < limitEnd; index++) {
    hash = ((hash << 1) + (GEAR[data[index] as number] as number)) | 0
    if ((hash & maskLarge) === 0) return index + 1 - start
  }
  return limit
}

/**
 * Buffers the chunker allocated to join a chunk that arrived in several pieces: nothing else
 * holds them, so a consumer may take them over (transfer them to another thread) as they are.
 */
const joined = new WeakSet<ArrayBufferLike>()

/** Whether `chunk` is a buffer of its own that the chunker made, which nobody else references. */
export function isJoinedChunk(chunk: Uint8Array): boolean {
  return joined.has(chunk.buffer) && chunk.byteOffset === 0 && chunk.byteLength === chunk.buffer.byteLength
}

/**
 * Cuts a stream into chunks; feed it with `push` and end it with `finish`. It scans each
 * byte once as it arrives, keeping the gear hash between pieces (the cuts are exactly those
 * of `cutPoint` over the whole stream), and keeps the pieces of the chunk in progress as
 * they are: a chunk inside one piece is a view of it, one across pieces is joined once.
 */
export class Chunker {
  private pieces: Uint8Array[] = []
  /** Bytes of the chunk in progress (in `pieces`). */
  private length = 0
  private hash = 0
  private readonly maskSmall: number
  private readonly maskLarge: number

  constructor(private readonly sizes: ChunkSizes = DEFAULT_CHUNK_SIZES) {
    checkChunkSizes(sizes)
    const bits = Math.log2(sizes.avg)
    this.maskSmall = topBits(bits + 2)
    this.maskLarge = topBits(bits - 2)
  }

  /** Yields every chunk that is complete once `bytes` is added. */
  *push(bytes: Uint8Array): Generator<Uint8Array> {
    const { min, avg, max } = this.sizes
    const { maskSmall, maskLarge } = this
    let offset = 0
    while (offset < bytes.length) {
      // `bytes[offset]` is at position `this.length` of the chunk in progress.
      const base = this.length - offset
      const end = bytes.length
      let index = offset + Math.max(0, min - this.length)
      let cut = -1
      let hash = this.hash
      const normalEnd = Math.min(end, avg - base)
      if (index < normalEnd) {
        cut = gearScan(bytes, index, normalEnd, hash, maskSmall)
        hash = scannedHash()
        index = normalEnd
      }
      if (cut < 0) {
        const limitEnd = Math.min(end, max - base)
        const from = Math.max(index, offset)
        if (from < limitEnd) {
          cut = gearScan(bytes, from, limitEnd, hash, maskLarge)
          hash = scannedHash()
        }
        if (cut < 0 && base + limitEnd === max) cut = limitEnd
      }
      if (cut < 0) {
        this.hash = hash
        if (end > offset) this.keep(bytes.subarray(offset, end))
        return
      }
      this.keep(bytes.subarray(offset, cut))
      yield this.take()
      offset = cut
    }
  }

  *finish(): Generator<Uint8Array> {
    if (this.length > 0) yield this.take()
  }

  private keep(piece: Uint8Array): void {
    this.pieces.push(piece)
    this.length += piece.length
  }

  /** The chunk in progress, as one buffer; the next starts empty. */
  private take(): Uint8Array {
    const pieces = this.pieces
    let chunk = pieces[0] as Uint8Array
    if (pieces.length > 1) {
      const own = Buffer.allocUnsafeSlow(this.length)
      let at = 0
      for (const piece of pieces) {
        own.set(piece, at)
        at += piece.length
      }
      joined.add(own.buffer)
      chunk = own
    }
    this.pieces = []
    this.length = 0
    this.hash = 0
    return chunk
  }
}

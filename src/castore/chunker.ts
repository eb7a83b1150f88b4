import { NixcasError } from '../errors.ts'

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

// The gear table: 256 fixed pseudo-random words from splitmix32 with a fixed seed. Changing
// it changes every cut point, so it is part of the storage format.
const GEAR = new Int32Array(256)
{
  let state = 0x6e697863 // "nixc"
  for (let index = 0; index < 256; index++) {
    state = (state + 0x9e3779b9) | 0
    let z = state
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
    GEAR[index] = z ^ (z >>> 16)
  }
}

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

/** Cuts a stream into chunks; feed it with `push` and end it with `finish`. */
export class Chunker {
  private pending: Uint8Array[] = []
  private pendingBytes = 0

  constructor(private readonly sizes: ChunkSizes = DEFAULT_CHUNK_SIZES) {
    checkChunkSizes(sizes)
  }

  /** Yields every chunk that is complete once `bytes` is added. */
  *push(bytes: Uint8Array): Generator<Uint8Array> {
    if (bytes.length === 0) return
    this.pending.push(bytes)
    this.pendingBytes += bytes.length
    // A cut is final only when a whole max-sized window is at hand.
    if (this.pendingBytes >= this.sizes.max) yield* this.cut(false)
  }

  *finish(): Generator<Uint8Array> {
    yield* this.cut(true)
  }

  private *cut(final: boolean): Generator<Uint8Array> {
    if (this.pendingBytes === 0) return
    const data = this.pending.length === 1 ? (this.pending[0] as Uint8Array) : Buffer.concat(this.pending, this.pendingBytes)
    let start = 0
    while (data.length - start >= (final ? 1 : this.sizes.max)) {
      const length = cutPoint(data, start, data.length, this.sizes)
      yield data.subarray(start, start + length)
      start += length
    }
    const rest = data.subarray(start)
    this.pending = rest.length > 0 ? [rest] : []
    this.pendingBytes = rest.length
  }
}

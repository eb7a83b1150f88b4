import { constants, createBrotliCompress, createDeflate, createGzip } from 'node:zlib'
import type { Transform } from 'node:stream'
import { Bzip2Encoder } from './bzip2/encoder.ts'
import { InputReader, newProgress, pieces, type CodecProgress } from './input.ts'
import type { CodecMethod } from './methods.ts'
import { SourceFailure, throughTransform } from './pump.ts'
import { XzEncoder } from './xz.ts'
import { ZstdEncoder } from './zstd.ts'

export interface EncodeOptions {
  signal?: AbortSignal
  /** The method's own level scale (xz 0–9, zstd 1–19, bzip2 1–9, br 0–11, gzip 1–9); fast by default. */
  level?: number
  progress?: CodecProgress
}

/**
 * Fast levels: compressing on the fly is for rare requests (a client that remembers a
 * `.nar.xz` URL), so speed matters more than ratio.
 */
export const DEFAULT_LEVELS: Record<Exclude<CodecMethod, 'none'>, number> = { xz: 0, zstd: 1, bzip2: 1, br: 1, gzip: 1, deflate: 1 }

const LEVEL_RANGES: Record<Exclude<CodecMethod, 'none'>, [number, number]> = {
  xz: [0, 9],
  zstd: [1, 19],
  bzip2: [1, 9],
  br: [0, 11],
  gzip: [1, 9],
  deflate: [1, 9],
}

/** Input is handed to the encoders in pieces of at most this, so each step stays short. */
const ENCODE_SLICE = 256 * 1024

/**
 * `source` compressed with `method`, produced as the consumer pulls. Memory is bounded by
 * the method (xz -0: ~2 MiB, zstd -1: ~1 MiB window, bzip2: ~20 bytes per block byte,
 * br and gzip: node:zlib's buffers). Output decodes with `xz -d`, `zstd -d`, `bzip2 -d`,
 * `brotli -d`, `gzip -d` and with Nix (liblzma, libzstd, libarchive).
 */
export async function* encode(source: AsyncIterable<Uint8Array>, method: CodecMethod, options: EncodeOptions = {}): AsyncGenerator<Uint8Array> {
  const progress = options.progress ?? newProgress()
  const input = new InputReader(source, options.signal, progress)
  try {
    options.signal?.throwIfAborted()
    for await (const piece of encoded(input, method, options.level, progress)) {
      options.signal?.throwIfAborted()
      yield piece
    }
  } finally {
    input.close()
  }
}

function levelFor(method: Exclude<CodecMethod, 'none'>, level: number | undefined): number {
  const [low, high] = LEVEL_RANGES[method]
  if (level === undefined) return DEFAULT_LEVELS[method]
  if (!Number.isInteger(level) || level < low || level > high) throw new RangeError(`${method} level must be an integer from ${low} to ${high}, not ${level}`)
  return level
}

async function* encoded(input: InputReader, method: CodecMethod, requested: number | undefined, progress: CodecProgress): AsyncGenerator<Uint8Array> {
  if (method === 'none') {
    for (let chunk = await input.next(); chunk; chunk = await input.next()) {
      progress.outputBytes += chunk.length
      yield* pieces(chunk)
    }
    return
  }
  const level = levelFor(method, requested)
  if (method === 'gzip' || method === 'deflate' || method === 'br') {
    try {
      yield* throughTransform(input, zlibEncoder(method, level), progress)
    } catch (error) {
      throw error instanceof SourceFailure ? error.original : error
    }
    return
  }
  const encoder = method === 'xz' ? new XzEncoder(level) : method === 'zstd' ? new ZstdEncoder(level) : new Bzip2Encoder(level)
  try {
    for (;;) {
      const chunk = await input.next()
      for (let offset = 0; offset < (chunk?.length ?? 1); offset += ENCODE_SLICE) {
        const out = await encoder.code(chunk ? chunk.subarray(offset, offset + ENCODE_SLICE) : null)
        for (const piece of out) {
          progress.outputBytes += piece.length
          yield* pieces(piece)
        }
      }
      if (!chunk) return
    }
  } finally {
    if (encoder instanceof XzEncoder) encoder.close()
  }
}

function zlibEncoder(method: 'gzip' | 'deflate' | 'br', level: number): Transform {
  const chunkSize = 64 * 1024
  if (method === 'br') return createBrotliCompress({ chunkSize, params: { [constants.BROTLI_PARAM_QUALITY]: level } })
  return method === 'gzip' ? createGzip({ chunkSize, level }) : createDeflate({ chunkSize, level })
}

import { constants, createBrotliDecompress, createGunzip, createInflate } from 'node:zlib'
import type { Transform } from 'node:stream'
import { NixcasError, isNixcasError } from '../errors.ts'
import { Bzip2Decoder } from './bzip2/decoder.ts'
import { InputReader, MAX_PIECE, OutputMeter, newProgress, pieces, type CodecProgress } from './input.ts'
import type { CodecMethod } from './methods.ts'
import { SourceFailure, throughTransform } from './pump.ts'
import { DONE, NEED_INPUT, type StepDecoder } from './step.ts'
import { XzDecoder } from './xz.ts'
import { ZstdDecoder } from './zstd.ts'

export interface DecodeOptions {
  /** Ends the decode promptly with the signal's reason, also while waiting for input. */
  signal?: AbortSignal
  /** TOO_LARGE as soon as the decoded bytes exceed this. */
  maxOutputBytes?: number
  /**
   * The most memory a decoder's own state may take: the xz dictionary (liblzma's memlimit)
   * and the zstd window. Streams that need more are refused as BAD_REQUEST. Default 128 MiB,
   * what `zstd -d` allows and more than `xz -9` needs.
   */
  memoryLimitBytes?: number
  /** Updated as bytes are read and produced. */
  progress?: CodecProgress
}

export const DEFAULT_DECODE_MEMORY_LIMIT = 128 * 1024 * 1024

/**
 * The decoded bytes of `source`, produced only as the consumer pulls: each piece is at most
 * MAX_PIECE bytes and no decoding happens while the consumer does not ask for the next one
 * (for gzip, deflate and br, node:zlib may run one small buffer ahead). Invalid, truncated,
 * empty or garbage input fails with BAD_REQUEST naming the method (bytes after the end of a
 * complete xz, zstd or bzip2 stream too; node:zlib ignores them after gzip, deflate and br,
 * as gzip -d does); the source's own errors (and the signal's reason) come through unchanged.
 *
 * Memory, whatever the ratio: xz up to `memoryLimitBytes` (its dictionary) plus ~2 MiB of
 * output per step; zstd its window (≤ min(128 MiB, memoryLimitBytes)) plus 1 MiB; bzip2
 * ~15 MB (a 900 kB block's links and its compressed form); gzip/deflate a 32 KiB window;
 * br a window of at most 16 MiB.
 */
export async function* decode(source: AsyncIterable<Uint8Array>, method: CodecMethod, options: DecodeOptions = {}): AsyncGenerator<Uint8Array> {
  const { signal, maxOutputBytes } = options
  const progress = options.progress ?? newProgress()
  const meter = new OutputMeter(maxOutputBytes, 'the decoded upload')
  const input = new InputReader(source, signal, progress)
  try {
    signal?.throwIfAborted()
    for await (const piece of decoded(input, method, options.memoryLimitBytes ?? DEFAULT_DECODE_MEMORY_LIMIT, progress)) {
      signal?.throwIfAborted()
      meter.add(piece.length)
      yield piece
    }
  } finally {
    input.close()
  }
}

async function* decoded(input: InputReader, method: CodecMethod, memoryLimit: number, progress: CodecProgress): AsyncGenerator<Uint8Array> {
  switch (method) {
    case 'none':
      for (let chunk = await input.next(); chunk; chunk = await input.next()) {
        progress.outputBytes += chunk.length
        yield* pieces(chunk)
      }
      return
    case 'xz':
      yield* stepped(input, method, new XzDecoder(memoryLimit, progress))
      return
    case 'zstd':
      yield* stepped(input, method, new ZstdDecoder(memoryLimit, progress))
      return
    case 'bzip2':
      yield* stepped(input, method, new Bzip2Decoder(progress))
      return
    case 'gzip':
    case 'deflate':
    case 'br':
      yield* zlibDecoded(input, method, progress)
  }
}

function invalid(method: CodecMethod, cause: unknown): NixcasError {
  const reason = cause instanceof Error ? cause.message : String(cause)
  return new NixcasError('BAD_REQUEST', `the upload is not valid ${method} data: ${reason}`, { cause })
}

/** Drives a step decoder: one bounded step per pull, input read only when it asks. */
async function* stepped(input: InputReader, method: CodecMethod, decoder: StepDecoder): AsyncGenerator<Uint8Array> {
  try {
    for (;;) {
      let result
      try {
        result = decoder.read()
      } catch (error) {
        throw invalid(method, error)
      }
      if (result === DONE) return
      if (result !== NEED_INPUT) {
        yield result
        continue
      }
      const chunk = await input.next()
      try {
        if (chunk) decoder.write(chunk)
        else decoder.end()
      } catch (error) {
        throw invalid(method, error)
      }
    }
  } finally {
    decoder.close()
  }
}

function zlibTransform(method: 'gzip' | 'deflate' | 'br'): Transform {
  const chunkSize = 64 * 1024
  if (method === 'br') return createBrotliDecompress({ chunkSize })
  // Z_SYNC_FLUSH at the end would accept a truncated stream silently; the default (Z_FINISH) does not.
  return method === 'gzip' ? createGunzip({ chunkSize, finishFlush: constants.Z_FINISH }) : createInflate({ chunkSize })
}

async function* zlibDecoded(input: InputReader, method: 'gzip' | 'deflate' | 'br', progress: CodecProgress): AsyncGenerator<Uint8Array> {
  try {
    for await (const piece of throughTransform(input, zlibTransform(method), progress)) yield* pieces(piece)
  } catch (error) {
    if (error instanceof SourceFailure) throw error.original
    throw isNixcasError(error) ? error : invalid(method, error)
  }
  if (progress.inputBytes === 0) throw invalid(method, new Error('the input is empty'))
}

export { MAX_PIECE }

import { createRequire } from 'node:module'
import type { CodecProgress } from './input.ts'
import { DONE, NEED_INPUT, type StepDecoder, type StepResult } from './step.ts'

/**
 * The parts of lzma-native's native stream (liblzma's lzma_stream) used here; the package's
 * types only describe its Transform wrapper.
 */
interface NativeStream {
  bufferHandler: (buffer: Buffer | null | undefined, processedChunks: number | undefined, error: Error | null | undefined) => void
  setBufsize(bytes: number): number
  /** Input, or null to finish; `async` runs liblzma on the libuv pool instead of here. */
  code(input: Uint8Array | null, async: boolean): void
  streamDecoder_(memlimit: number, flags: number): void
  easyEncoder_(preset: number, check: number): void
  resetUnderlying(): void
}

interface LzmaNative {
  Stream: new () => NativeStream
  CHECK_CRC64: number
  PRESET_EXTREME: number
}

const lzma = createRequire(import.meta.url)('lzma-native') as LzmaNative

/** liblzma's LZMA_CONCATENATED: decode every .xz stream in the input, and stream padding. */
const LZMA_CONCATENATED = 0x08

/**
 * How much input one liblzma call gets. liblzma offers no cap on output per call through
 * lzma-native (it loops until the input is used up), so the input is cut instead. LZMA's
 * range coder spends at least -log2(2017/2048) ≈ 0.022 bits per decision and the cheapest
 * 273-byte match takes 14 decisions, so one input byte yields at most ~7.1 KiB: 256 bytes of
 * input give at most ~1.8 MiB of output per call, whatever the stream. (A 20 GiB run of
 * zeros compresses ~7,000:1, close to that bound.)
 */
const INPUT_SLICE = 256

/** liblzma's output buffer per call; the pieces handed on are at most this large. */
const OUTPUT_BUFFER = 64 * 1024

function lzmaError(error: Error): Error {
  const code = (error as { code?: unknown }).code
  return code === 'LZMA_MEMLIMIT_ERROR' || /memory usage limit/i.test(error.message)
    ? new Error(`decoding it needs more memory than the limit (${error.message})`, { cause: error })
    : error
}

/**
 * .xz (and its stream padding and concatenation) through liblzma, fed INPUT_SLICE bytes a
 * call. Memory: liblzma's decoder is limited to `memoryLimit` bytes (the dictionary, at most
 * 64 MiB for `xz -9`, is most of it) and refuses streams that need more.
 */
export class XzDecoder implements StepDecoder {
  private stream: NativeStream | undefined = new lzma.Stream()
  private readonly output: Buffer[] = []
  private input: Uint8Array = new Uint8Array(0)
  private offset = 0
  private ended = false
  private finished = false
  private failure: Error | undefined

  constructor(
    memoryLimit: number,
    private readonly progress: CodecProgress,
  ) {
    const stream = this.stream as NativeStream
    stream.bufferHandler = (buffer, _processed, error) => {
      if (error) this.failure ??= lzmaError(error)
      else if (buffer) {
        this.output.push(buffer)
        this.progress.outputBytes += buffer.length
      } else if (buffer === null) this.finished = true
    }
    stream.setBufsize(OUTPUT_BUFFER)
    stream.streamDecoder_(memoryLimit, LZMA_CONCATENATED)
  }

  write(chunk: Uint8Array): void {
    this.input = chunk
    this.offset = 0
  }

  end(): void {
    this.ended = true
  }

  read(): StepResult {
    for (;;) {
      const piece = this.output.shift()
      if (piece) return piece
      if (this.failure) throw this.failure
      if (this.finished) return DONE
      const stream = this.stream
      if (!stream) return DONE
      if (this.offset < this.input.length) {
        const slice = this.input.subarray(this.offset, this.offset + INPUT_SLICE)
        this.offset += slice.length
        stream.code(slice, false)
      } else if (this.ended) {
        stream.code(null, false)
        // liblzma ends with STREAM_END or an error; anything else would loop forever.
        if (!this.finished && !this.failure && this.output.length === 0) throw new Error('the stream did not finish')
      } else {
        return NEED_INPUT
      }
    }
  }

  close(): void {
    if (!this.stream) return
    if (!this.finished && !this.failure) this.stream.resetUnderlying()
    this.stream = undefined
    this.output.length = 0
  }
}

/**
 * An .xz encoder whose work runs on the libuv pool (compression is slow, and a GET must not
 * hold the event loop): each chunk is coded, then its output is handed on before the next.
 */
export class XzEncoder {
  private readonly stream = new lzma.Stream()
  private output: Buffer[] = []
  private failure: Error | undefined
  private wake: (() => void) | undefined
  private processed = 0
  private finished = false

  constructor(preset: number) {
    this.stream.bufferHandler = (buffer, processedChunks, error) => {
      if (error) this.failure ??= error
      else if (buffer) this.output.push(buffer)
      else if (buffer === null) this.finished = true
      if (typeof processedChunks === 'number') this.processed += processedChunks
      this.wake?.()
    }
    this.stream.easyEncoder_(preset, lzma.CHECK_CRC64)
  }

  /** Compresses `chunk` (or finishes, for null) and returns what it produced. */
  async code(chunk: Uint8Array | null): Promise<Buffer[]> {
    const target = this.processed + 1
    this.stream.code(chunk === null ? null : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length), true)
    const done = (): boolean => this.failure !== undefined || (chunk === null ? this.finished : this.processed >= target)
    while (!done()) await new Promise<void>((resolve) => (this.wake = resolve))
    this.wake = undefined
    if (this.failure) throw this.failure
    const output = this.output
    this.output = []
    return output
  }

  /** Frees liblzma's encoder state (a consumer may stop before the end). */
  close(): void {
    if (!this.finished && !this.failure) this.stream.resetUnderlying()
    this.finished = true
  }
}

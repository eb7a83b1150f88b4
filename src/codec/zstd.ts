import { createRequire } from 'node:module'
import type * as ZstdBinding from 'zstd-napi/binding.js'
import { MAX_PIECE, type CodecProgress } from './input.ts'
import { DONE, NEED_INPUT, type StepDecoder, type StepResult } from './step.ts'

/**
 * zstd-napi's thin binding (ZSTD_decompressStream / ZSTD_compressStream2): the caller owns
 * the output buffer, so every call is bounded by its size.
 */
const zstd = createRequire(import.meta.url)('zstd-napi/binding') as typeof ZstdBinding

/** zstd's own default limit for decoders (`zstd -d` refuses larger windows without --memory). */
const MAX_WINDOW_LOG = 27

/**
 * Zstandard frames (and skippable frames, and concatenations of both). Memory: the window,
 * at most 2^windowLog bytes with windowLog ≤ min(27, log2(memoryLimit)), plus one 128 KiB
 * block; a frame that declares a larger window is refused.
 */
export class ZstdDecoder implements StepDecoder {
  private dctx: ZstdBinding.DCtx | undefined = new zstd.DCtx()
  private input: Uint8Array = new Uint8Array(0)
  private offset = 0
  private ended = false
  private sawInput = false
  /** ZSTD_decompressStream's last answer: 0 exactly when a frame ended and was flushed. */
  private lastHint = 1
  private outputFull = false
  /** Reused until a large piece is handed on in it. */
  private buffer = Buffer.allocUnsafe(MAX_PIECE)

  constructor(
    memoryLimit: number,
    private readonly progress: CodecProgress,
  ) {
    const windowLog = Math.max(10, Math.min(MAX_WINDOW_LOG, Math.floor(Math.log2(memoryLimit))))
    this.dctx?.setParameter(zstd.DParameter.windowLogMax, windowLog)
  }

  write(chunk: Uint8Array): void {
    this.input = chunk
    this.offset = 0
    this.sawInput = true
  }

  end(): void {
    this.ended = true
  }

  read(): StepResult {
    const dctx = this.dctx
    if (!dctx) return DONE
    while (this.offset < this.input.length || this.outputFull) {
      const output = this.buffer
      const [hint, produced, consumed] = this.call(dctx, output, this.input.subarray(this.offset))
      this.offset += consumed
      // A call that moves nothing says nothing of the frame: after a frame's end it answers
      // the size of a next frame's header, which must not count as "inside a frame".
      if (produced > 0 || consumed > 0) this.lastHint = hint
      this.outputFull = produced === output.length
      if (produced > 0) {
        this.progress.outputBytes += produced
        // Small pieces are copied; a large one takes the buffer with it.
        if (produced < MAX_PIECE / 4) return Uint8Array.prototype.slice.call(output, 0, produced)
        this.buffer = Buffer.allocUnsafe(MAX_PIECE)
        return output.subarray(0, produced)
      }
      if (consumed === 0) break
    }
    if (!this.ended) return NEED_INPUT
    if (!this.sawInput) throw new Error('the input is empty')
    if (this.lastHint !== 0) throw new Error('the input ends inside a frame (truncated)')
    return DONE
  }

  close(): void {
    this.dctx = undefined
  }

  private call(dctx: ZstdBinding.DCtx, output: Buffer, input: Uint8Array): [number, number, number] {
    try {
      return dctx.decompressStream(output, input)
    } catch (error) {
      const message = (error as Error).message
      throw /window|memory/i.test(message) ? new Error(`${message} (the window limit is 2^${MAX_WINDOW_LOG} bytes or the memory limit, whichever is lower)`, { cause: error }) : error
    }
  }
}

/** A Zstandard encoder at `level`, one frame, with the content checksum that `zstd` writes. */
export class ZstdEncoder {
  private readonly cctx = new zstd.CCtx()
  private readonly output = Buffer.allocUnsafe(zstd.cStreamOutSize())

  constructor(level: number) {
    this.cctx.setParameter(zstd.CParameter.compressionLevel, level)
    this.cctx.setParameter(zstd.CParameter.checksumFlag, 1)
  }

  /** Compresses `chunk`, or ends the frame for null; returns the compressed pieces. */
  code(chunk: Uint8Array | null): Buffer[] {
    const pieces: Buffer[] = []
    const input = chunk ?? new Uint8Array(0)
    const directive = chunk === null ? zstd.EndDirective.end : zstd.EndDirective.continue
    let offset = 0
    for (;;) {
      const [remaining, produced, consumed] = this.cctx.compressStream2(this.output, input.subarray(offset), directive)
      offset += consumed
      if (produced > 0) pieces.push(Buffer.from(this.output.subarray(0, produced)))
      const drained = chunk === null ? remaining === 0 : offset >= input.length && produced < this.output.length
      if (drained) return pieces
    }
  }
}

/**
 * A decoder driven one bounded step at a time: nothing happens between calls, so a consumer
 * that stops pulling stops the work, whatever the compression ratio.
 */
export const NEED_INPUT = Symbol('need input')
export const DONE = Symbol('done')

export type StepResult = Uint8Array | typeof NEED_INPUT | typeof DONE

export interface StepDecoder {
  /** More input; called only after read() answered NEED_INPUT. */
  write(chunk: Uint8Array): void
  /** The input has ended: read() must now drain, then answer DONE or throw (truncated). */
  end(): void
  /**
   * A non-empty piece of at most MAX_PIECE bytes, NEED_INPUT when the buffered input is used
   * up, or DONE after end() once everything was produced. Throws on invalid data.
   */
  read(): StepResult
  /** Releases native state now rather than at garbage collection. Idempotent. */
  close(): void
}

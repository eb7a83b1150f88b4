import type { Transform, Writable } from 'node:stream'
import type { CodecProgress, InputReader } from './input.ts'

/** A failure of the source (a client gone, an abort), told apart from the codec's own. */
export class SourceFailure extends Error {
  constructor(readonly original: unknown) {
    super('the source failed', { cause: original })
  }
}

/**
 * Runs a node:zlib Transform (gzip, deflate, brotli) as a pull-based generator. Node's zlib
 * streams honour backpressure inside one write (they stop when push() says the readable
 * buffer is full and resume on read), so with input written only while the transform
 * accepts it, the work ahead of the consumer is one readable buffer (`chunkSize`) and one
 * writable buffer. Every error of the transform is taken by the iterator: none is
 * unhandled. A source failure comes out as SourceFailure, the codec's as itself.
 */
export async function* throughTransform(input: InputReader, transform: Transform, progress: CodecProgress): AsyncGenerator<Uint8Array> {
  let sourceFailure: SourceFailure | undefined
  const feeding = (async () => {
    try {
      for (;;) {
        const chunk = await input.next()
        if (transform.destroyed) return
        if (!chunk) {
          transform.end()
          return
        }
        if (!transform.write(chunk)) await drained(transform)
      }
    } catch (error) {
      sourceFailure = new SourceFailure(error)
      transform.destroy(sourceFailure)
    }
  })()
  try {
    for await (const piece of transform as AsyncIterable<Buffer>) {
      progress.outputBytes += piece.length
      yield piece
    }
  } catch (error) {
    throw sourceFailure ?? error
  } finally {
    transform.destroy()
    // The feeder ends by itself: on the transform's close, or at the source's next chunk.
    void feeding
  }
}

/** Resolves when a writable that refused a write drains, or closes (then nothing more will be taken). */
export function drained(writable: Pick<Writable, 'on' | 'off'>): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      writable.off('drain', done)
      writable.off('close', done)
      resolve()
    }
    writable.on('drain', done)
    writable.on('close', done)
  })
}

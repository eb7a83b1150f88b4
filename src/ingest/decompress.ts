/**
 * The ingest's view of upload decoding: a thin wrapper over src/codec, kept so its callers
 * need not change.
 */
import { decode, type DecodeOptions } from '../codec/decode.ts'
import type { CodecMethod } from '../codec/methods.ts'

export { parseNarFileName } from '../codec/methods.ts'

/** How an uploaded NAR is compressed (a narinfo `Compression:` value). */
export type NarCompression = CodecMethod

/**
 * The decompressed bytes of `source`, pulled as the consumer reads. A stream that is not
 * valid for its compression fails with BAD_REQUEST naming the method.
 */
export function decompress(source: AsyncIterable<Uint8Array>, compression: NarCompression, options: DecodeOptions = {}): AsyncGenerator<Uint8Array> {
  return decode(source, compression, options)
}

/**
 * Whether an upload under a plain `.nar` name is gzip (two magic bytes; a NAR starts with
 * the length of "nix-archive-1", 0x0d), and the body with the bytes read to tell put back.
 */
export async function sniffGzip(body: AsyncIterable<Uint8Array>): Promise<{ method: 'none' | 'gzip'; body: AsyncIterable<Uint8Array> }> {
  const iterator = body[Symbol.asyncIterator]()
  const head: Uint8Array[] = []
  let length = 0
  let ended = false
  while (length < 2 && !ended) {
    const next = await iterator.next()
    if (next.done) ended = true
    else if (next.value.length > 0) {
      head.push(next.value)
      length += next.value.length
    }
  }
  const byte = (index: number): number | undefined => (head[0] !== undefined && index < head[0].length ? head[0][index] : head[1]?.[index - (head[0]?.length ?? 0)])
  const method = byte(0) === 0x1f && byte(1) === 0x8b ? 'gzip' : 'none'
  async function* rest(): AsyncGenerator<Uint8Array> {
    try {
      yield* head
      if (ended) return
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value
    } finally {
      if (!ended) await iterator.return?.()
    }
  }
  return { method, body: rest() }
}

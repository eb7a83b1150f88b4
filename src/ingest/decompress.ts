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

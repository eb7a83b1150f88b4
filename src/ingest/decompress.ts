import { Readable, Transform } from 'node:stream'
import lzma from 'lzma-native'
import { Decompress as ZstdDecompress } from 'fzstd'
import unbzip2 from 'unbzip2-stream'
import { NixcasError } from '../errors.ts'

/** How an uploaded NAR is compressed, from its URL suffix (Nix's upload names). */
export type NarCompression = 'none' | 'xz' | 'zstd' | 'bzip2'

const SUFFIXES: Record<string, NarCompression> = { '.nar': 'none', '.nar.xz': 'xz', '.nar.zst': 'zstd', '.nar.bz2': 'bzip2' }

/** Splits `<stem>.nar[.xz|.zst|.bz2]`; undefined for any other name. */
export function parseNarFileName(name: string): { stem: string; compression: NarCompression } | undefined {
  const match = /^([A-Za-z0-9_-]{1,128})(\.nar(?:\.xz|\.zst|\.bz2)?)$/.exec(name)
  const compression = match?.[2] && SUFFIXES[match[2]]
  return match && compression ? { stem: match[1] as string, compression } : undefined
}

function zstdTransform(): Transform {
  const transform = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      try {
        decoder.push(chunk)
        done()
      } catch (error) {
        done(error as Error)
      }
    },
    flush(done) {
      try {
        decoder.push(new Uint8Array(0), true)
        done()
      } catch (error) {
        done(error as Error)
      }
    },
  })
  // Called only once data flows, after this line has run.
  const decoder = new ZstdDecompress((bytes) => transform.push(bytes))
  return transform
}

/**
 * unbzip2-stream is an old-style through stream that decodes synchronously inside
 * write(): feed it one chunk at a time and hand on what each chunk produced.
 */
async function* bunzip2(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  const decoder = unbzip2()
  const output: Buffer[] = []
  let ended = false
  let failure: Error | undefined
  let wake: (() => void) | undefined
  decoder.on('data', (chunk: Buffer) => output.push(chunk))
  decoder.on('end', () => ((ended = true), wake?.()))
  decoder.on('error', (error: Error) => ((failure = error), wake?.()))
  for await (const chunk of source) {
    decoder.write(Buffer.from(chunk))
    if (failure) throw failure
    yield* output.splice(0)
  }
  decoder.end()
  while (!ended && failure === undefined) await new Promise<void>((resolve) => (wake = resolve))
  if (failure) throw failure
  yield* output.splice(0)
}

/**
 * The decompressed bytes of `source`. A stream that is not valid for its compression fails
 * with BAD_REQUEST naming the method.
 */
export async function* decompress(source: AsyncIterable<Uint8Array>, compression: NarCompression): AsyncGenerator<Uint8Array> {
  if (compression === 'none') {
    yield* source
    return
  }
  const decoded: AsyncIterable<Uint8Array> =
    compression === 'bzip2'
      ? bunzip2(source)
      : (Readable.from(source).compose(compression === 'xz' ? (lzma.createDecompressor() as Transform) : zstdTransform()) as Readable)
  try {
    for await (const chunk of decoded) yield chunk
  } catch (cause) {
    if (cause instanceof NixcasError) throw cause
    throw new NixcasError('BAD_REQUEST', `the upload is not valid ${compression} data: ${(cause as Error).message}`, { cause })
  }
}

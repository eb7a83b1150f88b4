import { createHash } from 'node:crypto'
import { NixcasError } from '../../errors.ts'
import { Chunker, DEFAULT_CHUNK_SIZES, type ChunkSizes } from '../../castore/chunker.ts'
import { DigestStream, digestOf } from '../../castore/digest.ts'
import { decode } from '../../codec/decode.ts'
import type { CodecProgress } from '../../codec/input.ts'
import type { CodecMethod } from '../../codec/methods.ts'
import type { NarEvent } from '../../nix/nar-format.ts'
import { readNar } from '../../nix/nar-reader.ts'
import type { IngestEvent } from '../events.ts'
import { abortError } from './abort.ts'

export interface ParseOptions {
  /** How the body is compressed (from the upload's name or Content-Encoding). */
  method: CodecMethod
  chunkSizes?: ChunkSizes
  /** Refuse NARs whose decoded size exceeds this, as soon as it does. */
  maxNarSize?: number
  signal?: AbortSignal
  /** The decoder's live byte counts (body bytes read, NAR bytes decoded): metrics, and proof that work stopped. */
  progress?: CodecProgress
}

const EMPTY = new Uint8Array(0)

/**
 * The CPU half of an ingest, in the calling thread: decode, parse, chunk and hash an
 * uploaded NAR into the events of `events.ts`. Pull-driven: nothing is decoded or read
 * from `body` beyond what the consumer's pace needs. Chunk bytes are views of the decoded
 * stream, not copies.
 */
export async function* parseNarEvents(body: AsyncIterable<Uint8Array>, options: ParseOptions): AsyncGenerator<IngestEvent> {
  const { signal } = options
  const maxNarSize = options.maxNarSize ?? Number.MAX_SAFE_INTEGER
  if (signal?.aborted) throw abortError(signal)
  const narHasher = createHash('sha256')
  let narSize = 0

  // The decoder enforces the limit on its output as it streams, and stops at an abort also
  // while it waits for the body.
  async function* decoded(): AsyncGenerator<Uint8Array> {
    for await (const bytes of decode(body, options.method, { signal, maxOutputBytes: maxNarSize, progress: options.progress })) {
      narSize += bytes.length
      narHasher.update(bytes)
      yield bytes
    }
  }

  try {
    yield* chunked(readNar(decoded()), options.chunkSizes ?? DEFAULT_CHUNK_SIZES, maxNarSize)
  } catch (error) {
    // However an abort surfaced (the decoder throws the signal's reason), it is ABORTED.
    throw signal?.aborted ? abortError(signal) : error
  }
  yield { type: 'done', narHash: narHasher.digest(), narSize }
}

/**
 * Chunks at least this large that a NAR repeats are sent as `repeat` (smaller ones cost
 * little to send again), remembered for up to this many distinct chunks per NAR (~100 B each).
 */
const REPEAT_MIN_BYTES = 4096
const REPEAT_MAX_ENTRIES = 65_536

/** The reader's events with each file's data cut into chunks, and every chunk and file hashed. */
async function* chunked(nar: AsyncIterable<NarEvent>, sizes: ChunkSizes, maxNarSize: number): AsyncGenerator<IngestEvent> {
  let contentBytes = 0
  let chunker = new Chunker(sizes)
  // Files no larger than the minimum chunk are one chunk, whose digest is the file's: they skip the second hash.
  let hasher: DigestStream | undefined
  let remaining = 0
  let lastDigest: Uint8Array = EMPTY

  const seen = new Set<string>()
  function* chunks(pieces: Iterable<Uint8Array>): Generator<IngestEvent> {
    for (const bytes of pieces) {
      lastDigest = digestOf(bytes)
      if (bytes.length >= REPEAT_MIN_BYTES) {
        const key = Buffer.from(lastDigest.buffer, lastDigest.byteOffset, lastDigest.byteLength).toString('latin1')
        if (seen.has(key)) {
          yield { type: 'repeat', digest: lastDigest, size: bytes.length }
          continue
        }
        if (seen.size < REPEAT_MAX_ENTRIES) seen.add(key)
      }
      yield { type: 'chunk', digest: lastDigest, bytes }
    }
  }

  for await (const event of nar) {
    switch (event.type) {
      case 'file':
        // The NAR holds at least every file's contents: a declared size past the limit is refused before it is decoded.
        contentBytes += event.size
        if (contentBytes > maxNarSize) throw new NixcasError('TOO_LARGE', `the NAR is larger than the limit of ${maxNarSize} bytes`)
        yield event
        remaining = event.size
        chunker = new Chunker(sizes)
        hasher = event.size > sizes.min ? new DigestStream() : undefined
        if (remaining === 0) yield { type: 'fileEnd', digest: digestOf(EMPTY) }
        break
      case 'data':
        hasher?.update(event.bytes)
        yield* chunks(chunker.push(event.bytes))
        remaining -= event.bytes.length
        if (remaining === 0) {
          yield* chunks(chunker.finish())
          yield { type: 'fileEnd', digest: hasher ? hasher.digest() : lastDigest }
        }
        break
      default:
        yield event
    }
  }
}

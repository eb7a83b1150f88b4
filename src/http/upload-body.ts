import type { FastifyReply, FastifyRequest } from 'fastify'
import { decode } from '../codec/decode.ts'
import { methodFromContentEncoding } from '../codec/methods.ts'
import { NixcasError, isNixcasError } from '../errors.ts'
import { readAhead } from './read-ahead.ts'

/**
 * Upload bodies as routes read them: streamed from the socket (routes register no body
 * parser), the `Content-Encoding` undone, and bounded. Nix ≥ 2.32 compresses narinfo,
 * listing and log uploads when asked (`narinfo-compression`, `ls-compression`,
 * `log-compression`) and names the method in `Content-Encoding`.
 */

export interface UploadLimit {
  /** Most decoded bytes accepted; more is a 413. */
  maxBytes: number
  /** What the body is, for messages: "narinfo", "build log". */
  what: string
}

/** How much of a body is read from the socket ahead of its decoder (see readAhead). */
const READ_AHEAD_BYTES = 8 * 1024 * 1024

/** Bytes on the wire beyond the decoded limit that an incompressible body may need. */
const slack = (maxBytes: number): number => Math.max(64 * 1024, Math.ceil(maxBytes / 8))

/** Aborted when the client goes away before the response is complete. */
export function clientGone(request: FastifyRequest, reply: FastifyReply): AbortSignal {
  const controller = new AbortController()
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) controller.abort(new NixcasError('ABORTED', 'the client went away'))
  })
  request.raw.once('aborted', () => controller.abort(new NixcasError('ABORTED', 'the client went away')))
  return controller.signal
}

/**
 * Counts the bytes of a source and stops it past `limit`: a body that decodes to little
 * (a stream of empty blocks) must not hold a connection and a decoder forever.
 */
async function* bounded(source: AsyncIterable<Uint8Array>, limit: number, what: string): AsyncGenerator<Uint8Array> {
  let total = 0
  for await (const chunk of source) {
    total += chunk.length
    if (total > limit) throw new NixcasError('TOO_LARGE', `the ${what} is larger than the limit of ${limit} bytes`)
    yield chunk
  }
}

/**
 * The decoded body of an upload, as a stream of at most `limit.maxBytes` bytes, its socket
 * read up to `readAheadBytes` ahead of the decoder (see readAhead). An unknown or stacked
 * Content-Encoding is a 415 before any byte is read.
 */
export function uploadBody(request: FastifyRequest, limit: UploadLimit, signal?: AbortSignal, readAheadBytes = READ_AHEAD_BYTES): AsyncIterable<Uint8Array> {
  const header = request.headers['content-encoding']
  const method = methodFromContentEncoding(header)
  if (method === undefined) {
    throw new NixcasError('UNSUPPORTED_ENCODING', `Content-Encoding ${JSON.stringify(header)} is not one of identity, br, zstd, xz, gzip, deflate, bzip2`)
  }
  const idleMs = request.server.settings.uploadIdleTimeout ?? 0
  const socket = readAhead(request.raw, readAheadBytes > 0 ? readAheadBytes : 1, readAheadBytes > 0 ? request.server.uploadBudget : undefined, idleMs)
  const raw = bounded(socket, limit.maxBytes + slack(limit.maxBytes), `${limit.what} upload`)
  return named(decode(raw, method, { signal, maxOutputBytes: limit.maxBytes }), limit.what)
}

/** Says which upload was too large. */
async function* named(source: AsyncIterable<Uint8Array>, what: string): AsyncGenerator<Uint8Array> {
  try {
    yield* source
  } catch (error) {
    if (isNixcasError(error, 'TOO_LARGE')) throw new NixcasError('TOO_LARGE', `${what}: ${error.message}`, { cause: error })
    throw error
  }
}

/**
 * A whole small upload body, decoded, in memory (at most `limit.maxBytes`). Room for it is
 * taken from the shared upload budget before a byte is read (the declared length of a body
 * sent as is, else the limit) and given back once it is read: however many such uploads
 * arrive at once, what they hold stays inside the budget, and a request waits with its
 * socket unread instead of memory growing. Nothing else is held while it waits, so waiting
 * bodies cannot hold each other up.
 */
export async function readUploadBody(request: FastifyRequest, limit: UploadLimit, signal?: AbortSignal): Promise<Buffer> {
  const budget = request.server.uploadBudget
  const declared = Number(request.headers['content-length'] ?? Number.NaN)
  const plain = methodFromContentEncoding(request.headers['content-encoding']) === 'none'
  const size = Math.min(plain && Number.isSafeInteger(declared) && declared >= 0 ? declared : limit.maxBytes, limit.maxBytes, budget.capacity)
  await budget.acquire(size, false, signal)
  try {
    const chunks: Uint8Array[] = []
    // Its room is taken already, and it is read as fast as it comes: no read-ahead.
    for await (const chunk of uploadBody(request, limit, signal, 0)) chunks.push(chunk)
    return Buffer.concat(chunks)
  } finally {
    budget.release(size)
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/** A whole small upload body as UTF-8 text; bytes that are not UTF-8 are a 400. */
export async function readUploadText(request: FastifyRequest, limit: UploadLimit, signal?: AbortSignal): Promise<string> {
  const bytes = await readUploadBody(request, limit, signal)
  try {
    return utf8.decode(bytes)
  } catch (cause) {
    throw new NixcasError('BAD_REQUEST', `the ${limit.what} is not UTF-8 text`, { cause })
  }
}

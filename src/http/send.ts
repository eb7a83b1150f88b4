import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { compressBytes, compressStream, negotiateEncoding, type ContentEncoding } from './encoding.ts'
import { drained } from '../codec/pump.ts'
import { recordFailure } from './request-log.ts'
import { NixcasError } from '../errors.ts'

/** Sends a small text body, compressed when the client accepts it. */
export function sendText(request: FastifyRequest, reply: FastifyReply, type: string, text: string): FastifyReply {
  reply.type(type).header('vary', 'Accept-Encoding')
  const encoding = negotiateEncoding(request.headers['accept-encoding'])
  if (encoding === undefined) return reply.send(text)
  return reply.header('content-encoding', encoding).send(compressBytes(Buffer.from(text), encoding))
}

/**
 * Compressed copies of bodies that are sent again and again (cached narinfos), made once per
 * body and encoding. Keyed weakly by the body: a copy lives as long as its body is cached.
 */
const encodedCopies = new WeakMap<Buffer, Partial<Record<ContentEncoding, Buffer>>>()

function encodedCopy(body: Buffer, encoding: ContentEncoding): Buffer {
  let copies = encodedCopies.get(body)
  if (copies === undefined) encodedCopies.set(body, (copies = {}))
  return (copies[encoding] ??= compressBytes(body, encoding))
}

/**
 * Sends a small body that is itself cached (the same Buffer for every request), compressed
 * when the client accepts it, each compression made once. `cacheControl` is the whole
 * header value, made once by the caller rather than per request.
 */
export function sendCachedBytes(request: FastifyRequest, reply: FastifyReply, type: string, cacheControl: string, body: Buffer): FastifyReply {
  reply.header('content-type', type).header('cache-control', cacheControl).header('vary', 'Accept-Encoding')
  const { encoding, bytes } = cachedEncoding(body, request.headers['accept-encoding'])
  if (encoding !== undefined) reply.header('content-encoding', encoding)
  return reply.send(bytes)
}

/** What `Accept-Encoding` values ask for: clients send the same few again and again. */
const negotiated = new Map<string, ContentEncoding | undefined>()

/** `negotiateEncoding`, remembered for the few values clients send, for answers made before Fastify. */
export function acceptedEncoding(acceptEncoding: string | undefined): ContentEncoding | undefined {
  if (acceptEncoding === undefined) return undefined
  let encoding = negotiated.get(acceptEncoding)
  if (encoding === undefined && !negotiated.has(acceptEncoding)) {
    encoding = negotiateEncoding(acceptEncoding)
    // Any string a client sends: remembered only while few are seen.
    if (negotiated.size < 64) negotiated.set(acceptEncoding, encoding)
  }
  return encoding
}

/**
 * A cached body as the client accepts it: the body itself, or its compressed copy (made once
 * per body and encoding) with the encoding to name.
 */
export function cachedEncoding(body: Buffer, acceptEncoding: string | undefined): { encoding: ContentEncoding | undefined; bytes: Buffer } {
  const encoding = acceptedEncoding(acceptEncoding)
  return encoding === undefined ? { encoding, bytes: body } : { encoding, bytes: encodedCopy(body, encoding) }
}

/**
 * Sends text made piece by piece (a listing of millions of entries), compressed when the
 * client accepts it. Pieces are made only as fast as the client reads them, so the whole
 * text is never held at once.
 */
export function sendTextStream(request: FastifyRequest, reply: FastifyReply, type: string, pieces: Iterable<string>): FastifyReply {
  reply.type(type).header('vary', 'Accept-Encoding')
  const body = Readable.from((function* () {
    for (const piece of pieces) yield Buffer.from(piece)
  })())
  const encoding = negotiateEncoding(request.headers['accept-encoding'])
  if (encoding === undefined) return reply.send(body)
  const compressor = compressStream(encoding)
  pipeline(body, compressor).catch((error: unknown) => recordFailure(request, error))
  return reply.header('content-encoding', encoding).send(compressor)
}

/** A 404 that CDNs may cache briefly (`notFoundMaxAge`), so a path pushed later soon shows up. */
export function sendNotFound(reply: FastifyReply, what: string): FastifyReply {
  return reply.code(404).header('cache-control', `public, max-age=${reply.server.settings.notFoundMaxAge}`).type('text/plain').send(`${what}\n`)
}

/**
 * Sends `body` straight to the socket, each piece given to `written` once the socket has
 * taken it (its write completed or failed), so its buffer can be reused: pieces of a NAR
 * are pool buffers. Writes wait for the socket to drain, so what is queued for it is one
 * piece at a time. The headers go out with the first piece: a body that fails before it
 * (a corrupt object on the first read) is answered with its error's status, as any route's
 * error; one that fails later ends the response short of its Content-Length (as Fastify
 * does with a failed stream). Either is recorded for the request's log line.
 */
export function sendPieces(request: FastifyRequest, reply: FastifyReply, body: AsyncIterable<Uint8Array>, written: (piece: Uint8Array) => void): FastifyReply {
  reply.hijack()
  const response = reply.raw
  let started = false
  const start = (): void => {
    started = true
    for (const [name, value] of Object.entries(reply.getHeaders())) if (value !== undefined) response.setHeader(name, value)
    response.writeHead(reply.statusCode)
  }
  void (async () => {
    try {
      for await (const piece of body) {
        if (!started) start()
        if (response.destroyed) {
          written(piece)
          break
        }
        if (!response.write(piece, () => written(piece))) await drained(response)
      }
      if (!started) start()
      if (!response.destroyed) response.end()
    } catch (error) {
      recordFailure(request, error)
      if (started || response.destroyed) {
        response.destroy()
        return
      }
      const known = error instanceof NixcasError
      response.writeHead(known ? error.status : 500, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' })
      response.end(`${known ? error.message : 'internal error'}\n`)
    }
  })()
  return reply
}

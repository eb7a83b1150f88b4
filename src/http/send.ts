import type { FastifyReply, FastifyRequest } from 'fastify'
import { compressBytes, negotiateEncoding } from './encoding.ts'

/** Sends a small text body, compressed when the client accepts it. */
export function sendText(request: FastifyRequest, reply: FastifyReply, type: string, text: string): FastifyReply {
  reply.type(type).header('vary', 'Accept-Encoding')
  const encoding = negotiateEncoding(request.headers['accept-encoding'])
  if (encoding === undefined) return reply.send(text)
  return reply.header('content-encoding', encoding).send(compressBytes(Buffer.from(text), encoding))
}

/** A 404 that CDNs may cache briefly (`notFoundMaxAge`), so a path pushed later soon shows up. */
export function sendNotFound(reply: FastifyReply, what: string): FastifyReply {
  return reply.code(404).header('cache-control', `public, max-age=${reply.server.settings.notFoundMaxAge}`).type('text/plain').send(`${what}\n`)
}

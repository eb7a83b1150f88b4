import type { FastifyReply, FastifyRequest } from 'fastify'
import { compressBytes, negotiateEncoding } from './encoding.ts'

/** Sends a small text body, compressed when the client accepts it. */
export function sendText(request: FastifyRequest, reply: FastifyReply, type: string, text: string): FastifyReply {
  reply.type(type).header('vary', 'Accept-Encoding')
  const encoding = negotiateEncoding(request.headers['accept-encoding'])
  if (encoding === undefined) return reply.send(text)
  return reply.header('content-encoding', encoding).send(compressBytes(Buffer.from(text), encoding))
}

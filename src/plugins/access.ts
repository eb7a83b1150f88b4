import type { FastifyReply, FastifyRequest } from 'fastify'

const CHALLENGE = 'Basic realm="nixcas", charset="UTF-8"'

/** preHandler for routes that write: 401 with a challenge, or 403 when writes are closed. */
export async function requireWrite(request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const denied = request.server.access.checkWrite(request.headers.authorization)
  if (denied === undefined) return
  reply.header('cache-control', 'no-store')
  if (denied === 401) {
    reply.header('www-authenticate', CHALLENGE)
    return reply.code(401).type('text/plain').send('authentication required to write\n')
  }
  return reply.code(403).type('text/plain').send('writes are disabled: no write credentials are configured on this server\n')
}

/** preHandler for reads, which are public unless read credentials are configured. */
export async function requireRead(request: FastifyRequest, reply: FastifyReply): Promise<void> {
  if (request.server.access.checkRead(request.headers.authorization) === undefined) return
  reply.header('www-authenticate', CHALLENGE).header('cache-control', 'no-store')
  return reply.code(401).type('text/plain').send('authentication required\n')
}

import type { FastifyInstance } from 'fastify'
import { sendNotFound, sendText } from '../src/http/send.ts'
import { requireWrite } from '../src/plugins/access.ts'

const NARINFO_BODY_LIMIT = 1024 * 1024

/** GET, HEAD and PUT of `<store path hash>.narinfo`. */
export default async function narinfoRoutes(fastify: FastifyInstance): Promise<void> {
  // Nix sends text/x-nix-narinfo; accept any type, as text, and small.
  fastify.removeAllContentTypeParsers()
  fastify.addContentTypeParser('*', { parseAs: 'string', bodyLimit: NARINFO_BODY_LIMIT }, (_request, body, done) => done(null, body))

  fastify.get<{ Params: { hash: string } }>('/:hash.narinfo', async (request, reply) => {
    const text = await fastify.cache.narInfo(request.params.hash)
    if (text === undefined) {
      return sendNotFound(reply, 'no such path')
    }
    reply.header('cache-control', `public, max-age=${fastify.settings.narinfoMaxAge}`)
    return sendText(request, reply, 'text/x-nix-narinfo', text)
  })

  fastify.put<{ Params: { hash: string }; Body: string }>('/:hash.narinfo', { preHandler: requireWrite, bodyLimit: NARINFO_BODY_LIMIT }, async (request, reply) => {
    await fastify.cache.putNarInfo(request.params.hash, typeof request.body === 'string' ? request.body : '')
    return reply.code(204).header('cache-control', 'no-store').send()
  })
}

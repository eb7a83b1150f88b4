import type { FastifyInstance } from 'fastify'
import { sendNotFound, sendText } from '../src/http/send.ts'
import { clientGone, readUploadText } from '../src/http/upload-body.ts'
import { requireWrite } from '../src/plugins/access.ts'

const NARINFO_BODY_LIMIT = 1024 * 1024

/** GET, HEAD and PUT of `<store path hash>.narinfo`. */
export default async function narinfoRoutes(fastify: FastifyInstance): Promise<void> {
  // Nix sends text/x-nix-narinfo, maybe with a Content-Encoding: the handler reads the body.
  fastify.removeAllContentTypeParsers()
  fastify.addContentTypeParser('*', (_request, _payload, done) => done(null))

  fastify.get<{ Params: { hash: string } }>('/:hash.narinfo', async (request, reply) => {
    const text = await fastify.cache.narInfo(request.params.hash)
    if (text === undefined) {
      return sendNotFound(reply, 'no such path')
    }
    fastify.accessRecorder.path(request.params.hash)
    reply.header('cache-control', `public, max-age=${fastify.settings.narinfoMaxAge}`)
    return sendText(request, reply, 'text/x-nix-narinfo', text)
  })

  fastify.put<{ Params: { hash: string } }>('/:hash.narinfo', { preHandler: requireWrite }, async (request, reply) => {
    const text = await readUploadText(request, { maxBytes: NARINFO_BODY_LIMIT, what: 'narinfo' }, clientGone(request, reply))
    await fastify.cache.putNarInfo(request.params.hash, text)
    return reply.code(204).header('cache-control', 'no-store').send()
  })
}

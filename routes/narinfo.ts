import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { sendCachedBytes, sendNotFound } from '../src/http/send.ts'
import { clientGone, readUploadText } from '../src/http/upload-body.ts'
import { requireWrite } from '../src/plugins/access.ts'
import { NARINFO_ROUTE, NARINFO_TYPE, narinfoCacheControl } from '../src/http/fast-narinfo.ts'

const NARINFO_BODY_LIMIT = 1024 * 1024

type NarInfoRequest = FastifyRequest<{ Params: { hash: string } }>

/** GET, HEAD and PUT of `<store path hash>.narinfo`. */
export default async function narinfoRoutes(fastify: FastifyInstance): Promise<void> {
  // Nix sends text/x-nix-narinfo, maybe with a Content-Encoding: the handler reads the body.
  fastify.removeAllContentTypeParsers()
  fastify.addContentTypeParser('*', (_request, _payload, done) => done(null))
  const cacheControl = narinfoCacheControl(fastify.settings.narinfoMaxAge)

  async function lookUp(request: NarInfoRequest, reply: FastifyReply): Promise<FastifyReply> {
    const body = await fastify.cache.narInfo(request.params.hash)
    if (body === undefined) return sendNotFound(reply, 'no such path')
    fastify.accessRecorder.path(request.params.hash)
    return sendCachedBytes(request, reply, NARINFO_TYPE, cacheControl, body)
  }

  // Not an async function: a narinfo in memory (most requests: Nix asks for each one of a
  // closure, then again for every build) is answered without a promise. HEAD comes here too.
  // A listening server answers most of these before Fastify (src/http/fast-narinfo.ts); the
  // route answers them when it does not (credentials, request logging, injected requests).
  fastify.get<{ Params: { hash: string } }>(NARINFO_ROUTE, (request, reply) => {
    const cached = fastify.cache.cachedNarInfo(request.params.hash)
    if (cached === undefined) return lookUp(request, reply)
    fastify.accessRecorder.path(request.params.hash)
    return sendCachedBytes(request, reply, NARINFO_TYPE, cacheControl, cached)
  })

  fastify.put<{ Params: { hash: string } }>(NARINFO_ROUTE, { preHandler: requireWrite }, async (request, reply) => {
    const text = await readUploadText(request, { maxBytes: NARINFO_BODY_LIMIT, what: 'narinfo' }, clientGone(request, reply))
    await fastify.cache.putNarInfo(request.params.hash, text)
    return reply.code(204).header('cache-control', 'no-store').send()
  })
}

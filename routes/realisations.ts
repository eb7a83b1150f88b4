import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { sendNotFound, sendText } from '../src/http/send.ts'
import { clientGone, readUploadText } from '../src/http/upload-body.ts'
import { BUILD_TRACE_PREFIX, parseDoiPath, REALISATIONS_PREFIX } from '../src/nix/drv-output.ts'
import { requireWrite } from '../src/plugins/access.ts'

/** A realisation lists one entry per CA input; a few thousand fit with room to spare. */
const DOI_BODY_LIMIT = 1024 * 1024

/**
 * `realisations/<drv hash>!<output>.doi` (Nix ≤ 2.34) and
 * `build-trace-v2/<drv>/<output>.doi` (Nix ≥ 2.35): GET, HEAD and PUT.
 */
export default async function realisationRoutes(fastify: FastifyInstance): Promise<void> {
  fastify.removeAllContentTypeParsers()
  fastify.addContentTypeParser('*', (_request, _payload, done) => done(null))

  const get = async (request: FastifyRequest, reply: FastifyReply, path: string): Promise<FastifyReply> => {
    const text = await fastify.cache.realisations.get(parseDoiPath(path))
    if (text === undefined) return sendNotFound(reply, 'no such realisation')
    reply.header('cache-control', `public, max-age=${fastify.settings.narinfoMaxAge}`)
    return sendText(request, reply, 'application/json', text)
  }

  const put = async (request: FastifyRequest, reply: FastifyReply, path: string): Promise<FastifyReply> => {
    const parsed = parseDoiPath(path)
    const text = await readUploadText(request, { maxBytes: DOI_BODY_LIMIT, what: 'realisation' }, clientGone(request, reply))
    await fastify.cache.realisations.put(parsed, text)
    return reply.code(204).header('cache-control', 'no-store').send()
  }

  type Realisation = { Params: { name: string } }
  type BuildTrace = { Params: { drv: string; output: string } }
  const realisation = (request: FastifyRequest<Realisation>): string => `${REALISATIONS_PREFIX}/${request.params.name}`
  const buildTrace = (request: FastifyRequest<BuildTrace>): string => `${BUILD_TRACE_PREFIX}/${request.params.drv}/${request.params.output}`

  fastify.get<Realisation>(`/${REALISATIONS_PREFIX}/:name`, async (request, reply) => get(request, reply, realisation(request)))
  fastify.put<Realisation>(`/${REALISATIONS_PREFIX}/:name`, { preHandler: requireWrite }, async (request, reply) => put(request, reply, realisation(request)))
  fastify.get<BuildTrace>(`/${BUILD_TRACE_PREFIX}/:drv/:output`, async (request, reply) => get(request, reply, buildTrace(request)))
  fastify.put<BuildTrace>(`/${BUILD_TRACE_PREFIX}/:drv/:output`, { preHandler: requireWrite }, async (request, reply) => put(request, reply, buildTrace(request)))
}

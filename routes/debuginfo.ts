import type { FastifyInstance } from 'fastify'
import { sendNotFound, sendText } from '../src/http/send.ts'
import { clientGone, readUploadText } from '../src/http/upload-body.ts'
import { parseDebugInfoName } from '../src/nix/debuginfo.ts'
import { requireWrite } from '../src/plugins/access.ts'

/** An entry is two short strings. */
const DEBUGINFO_BODY_LIMIT = 64 * 1024

/** `debuginfo/<build-id>.debug` (`nix copy --to '…?index-debug-info=true'`, read by dwarffs): GET, HEAD and PUT. */
export default async function debugInfoRoutes(fastify: FastifyInstance): Promise<void> {
  fastify.removeAllContentTypeParsers()
  fastify.addContentTypeParser('*', (_request, _payload, done) => done(null))

  fastify.get<{ Params: { name: string } }>('/debuginfo/:name', async (request, reply) => {
    const text = await fastify.cache.debugInfo.get(request.params.name)
    if (text === undefined) return sendNotFound(reply, 'no such debug info')
    reply.header('cache-control', `public, max-age=${fastify.settings.narinfoMaxAge}`)
    return sendText(request, reply, 'application/json', text)
  })

  fastify.put<{ Params: { name: string } }>('/debuginfo/:name', { preHandler: requireWrite }, async (request, reply) => {
    parseDebugInfoName(request.params.name)
    const text = await readUploadText(request, { maxBytes: DEBUGINFO_BODY_LIMIT, what: 'debuginfo entry' }, clientGone(request, reply))
    await fastify.cache.debugInfo.put(request.params.name, text)
    return reply.code(204).header('cache-control', 'no-store').send()
  })
}

import type { FastifyInstance } from 'fastify'
import { sendText } from '../src/http/send.ts'

/** GET `<store path hash>.ls`: the JSON listing of a store path. */
export default async function listingRoutes(fastify: FastifyInstance): Promise<void> {
  fastify.get<{ Params: { hash: string } }>('/:hash.ls', async (request, reply) => {
    const listing = await fastify.cache.listing(request.params.hash)
    if (listing === undefined) {
      return reply.code(404).header('cache-control', `public, max-age=${fastify.settings.notFoundMaxAge}`).type('text/plain').send('no such path\n')
    }
    reply.header('cache-control', `public, max-age=${fastify.settings.narinfoMaxAge}`)
    return sendText(request, reply, 'application/json', JSON.stringify(listing))
  })
}

import type { FastifyInstance } from 'fastify'

export default async function cacheInfoRoutes(fastify: FastifyInstance): Promise<void> {
  fastify.get('/nix-cache-info', async (_request, reply) => {
    return reply.type('text/x-nix-cache-info').header('cache-control', `public, max-age=${fastify.settings.narinfoMaxAge}`).send(fastify.cache.cacheInfo())
  })
}

import type { FastifyInstance } from 'fastify'

/** GET /metrics in Prometheus text format. */
export default async function metricsRoutes(fastify: FastifyInstance): Promise<void> {
  fastify.get('/metrics', async (_request, reply) => {
    return reply.type('text/plain; version=0.0.4').header('cache-control', 'no-store').send(fastify.metrics.render())
  })
}

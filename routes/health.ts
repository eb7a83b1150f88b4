import type { FastifyInstance } from 'fastify'
import { keys } from '../src/cas/keys.ts'

const PROBE_TIMEOUT = 5000

/** GET /health: the process is alive and the root store answers. */
export default async function healthRoutes(fastify: FastifyInstance): Promise<void> {
  fastify.get('/health', { config: { public: true } }, async (_request, reply) => {
    reply.header('cache-control', 'no-store')
    const started = Date.now()
    try {
      await fastify.stores.root.head(keys.healthProbe, { signal: AbortSignal.timeout(PROBE_TIMEOUT) })
      return await reply.send({ status: 'ok', store: fastify.stores.root.name, storeLatencyMs: Date.now() - started })
    } catch (error) {
      return reply.code(503).send({ status: 'unavailable', store: fastify.stores.root.name, error: (error as Error).message })
    }
  })
}

import type { FastifyInstance } from 'fastify'
import { sendNotFound } from '../src/http/send.ts'
import { Pins } from '../src/lifecycle/pins.ts'
import { requireWrite } from '../src/plugins/access.ts'

const name = { type: 'object', required: ['name'], properties: { name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$' } } } as const
const PIN_BODY_LIMIT = 1024 * 1024

/**
 * Pins over HTTP, for holders of a write credential (as `nixcas pin`): `GET /pins`,
 * `GET /pins/<name>`, `PUT /pins/<name>` with `{"paths": [store paths]}` (replaces the
 * pin's paths), `DELETE /pins/<name>`. Answers are JSON and never cached.
 */
export default async function pinRoutes(fastify: FastifyInstance): Promise<void> {
  const pins = (): Pins => new Pins(fastify.cache.cas.store, fastify.cache.storeDir)
  fastify.addHook('preHandler', requireWrite)
  fastify.addHook('onSend', async (_request, reply) => {
    reply.header('cache-control', 'no-store')
  })

  fastify.get('/pins', async () => {
    const all = []
    for await (const pin of pins().list()) all.push(pin)
    return { pins: all }
  })

  fastify.get<{ Params: { name: string } }>('/pins/:name', { schema: { params: name } }, async (request, reply) => {
    const pin = await pins().get(request.params.name)
    return pin ?? sendNotFound(reply, 'no such pin')
  })

  fastify.put<{ Params: { name: string }; Body: { paths: string[] } }>(
    '/pins/:name',
    {
      bodyLimit: PIN_BODY_LIMIT,
      schema: {
        params: name,
        body: { type: 'object', required: ['paths'], additionalProperties: false, properties: { paths: { type: 'array', maxItems: 10_000, items: { type: 'string', maxLength: 512 } } } },
      },
    },
    async (request) => pins().set(request.params.name, request.body.paths),
  )

  fastify.delete<{ Params: { name: string } }>('/pins/:name', { schema: { params: name } }, async (request, reply) => {
    if (!(await pins().remove(request.params.name))) return sendNotFound(reply, 'no such pin')
    return reply.code(204).send()
  })
}

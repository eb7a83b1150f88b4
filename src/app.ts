import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import autoload from '@fastify/autoload'
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify'
import { NixcasError } from './errors.ts'
import { RequestLogController, logRequest, recordFailure, requestLogger, watchResponse } from './http/request-log.ts'
import { sendNotFound } from './http/send.ts'
import { requireRead } from './plugins/access.ts'
import services, { type ServicesOptions } from './plugins/services.ts'
import shedding, { type SheddingOptions } from './plugins/shedding.ts'

export interface AppOptions extends ServicesOptions {
  pressure: SheddingOptions
}

const routesDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'routes')
// Run from source (tsx), the routes are TypeScript too; autoload cannot see tsx's ESM hook itself.
if (import.meta.url.endsWith('.ts')) process.env.FASTIFY_AUTOLOAD_TYPESCRIPT ??= '1'

/**
 * The nixcas HTTP app as a Fastify plugin: shared services, load shedding, one log line
 * per request, errors from the one table, and the routes under routes/. It never listens.
 */
export async function nixcasApp(fastify: FastifyInstance, options: AppOptions): Promise<void> {
  // Series of nixcas_http_requests_total by route, method and status: a bounded set (routes
  // are ours, Node's parser knows a fixed list of methods), each made once.
  const series = new Map<string, (amount?: number) => void>()
  const finished = (request: FastifyRequest, reply: FastifyReply, completed: boolean): void => {
    const status = logRequest(request, reply, fastify.stores.root.name, completed)
    const route = request.routeOptions.url ?? 'unknown'
    const id = `${route} ${request.method} ${status}`
    let count = series.get(id)
    if (count === undefined) series.set(id, (count = fastify.metrics.requests.series({ route, method: request.method, status: String(status) })))
    count()
  }
  // First of all hooks: a client may go away at any point. Hooks that run on every request
  // take a callback rather than return a promise: the cheapest way through Fastify.
  fastify.addHook('onRequest', (request, reply, done) => {
    watchResponse(request, reply, finished)
    done()
  })

  await fastify.register(services, options)
  // Before access control: a shed request costs nothing more.
  await fastify.register(shedding, options.pressure)

  // Public reads (the default) need no hook at all.
  if (!options.access.readsPublic) {
    fastify.addHook('onRequest', async (request, reply) => {
      if (request.url !== '/health') await requireRead(request, reply)
    })
  }

  fastify.setErrorHandler(async (error: FastifyError | NixcasError, request, reply) => {
    const status = error instanceof NixcasError ? error.status : (error.statusCode ?? 500)
    recordFailure(request, error) // reported in the request's one line
    if (reply.sent || reply.raw.headersSent) return
    reply.code(status).header('cache-control', 'no-store').type('text/plain; charset=utf-8')
    if (status === 503 && !reply.hasHeader('retry-after')) reply.header('retry-after', '5')
    const exposed = error instanceof NixcasError || error.statusCode !== undefined
    return reply.send(`${exposed ? error.message : 'internal error'}\n`)
  })
  fastify.setNotFoundHandler(async (_request, reply) => {
    return sendNotFound(reply, 'not found')
  })

  await fastify.register(autoload, { dir: routesDir, forceESM: true, ignorePattern: /\.d\.ts$/ })
}

/** A Fastify instance with the app registered: for the server and for tests. */
export async function buildApp(options: AppOptions, server: FastifyServerOptions = {}): Promise<FastifyInstance> {
  const fastify = Fastify({
    // One line per request comes from logRequest instead of Fastify's two.
    logController: new RequestLogController(),
    return503OnClosing: true,
    childLoggerFactory: requestLogger,
    forceCloseConnections: 'idle',
    ...server,
  })
  await fastify.register(nixcasApp, options)
  return fastify
}

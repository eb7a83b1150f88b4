import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import autoload from '@fastify/autoload'
import underPressure from '@fastify/under-pressure'
import Fastify, { LogController, type FastifyError, type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { NixcasError } from './errors.ts'
import { sendNotFound } from './http/send.ts'
import { requireRead } from './plugins/access.ts'
import services, { type ServicesOptions } from './plugins/services.ts'

export interface PressureOptions {
  maxEventLoopDelay: number
  maxHeapUsedBytes: number
  maxRssBytes: number
  retryAfter: number
}

export interface AppOptions extends ServicesOptions {
  pressure: PressureOptions
}

const routesDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'routes')
// Run from source (tsx), the routes are TypeScript too; autoload cannot see tsx's ESM hook itself.
if (import.meta.url.endsWith('.ts')) process.env.FASTIFY_AUTOLOAD_TYPESCRIPT ??= '1'

/**
 * The nixcas HTTP app as a Fastify plugin: shared services, load shedding, one log line
 * per request, errors from the one table, and the routes under routes/. It never listens.
 */
export async function nixcasApp(fastify: FastifyInstance, options: AppOptions): Promise<void> {
  await fastify.register(underPressure, {
    maxEventLoopDelay: options.pressure.maxEventLoopDelay,
    maxHeapUsedBytes: options.pressure.maxHeapUsedBytes,
    maxRssBytes: options.pressure.maxRssBytes,
    retryAfter: options.pressure.retryAfter,
    message: 'nixcas is overloaded, retry later',
  })
  await fastify.register(services, options)

  fastify.addHook('onRequest', async (request, reply) => {
    if (request.url !== '/health') await requireRead(request, reply)
  })
  fastify.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unknown'
    fastify.metrics.requests.inc({ route, method: request.method, status: String(reply.statusCode) })
    request.log.info(
      { method: request.method, url: request.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime), range: request.headers.range },
      'request',
    )
  })

  fastify.setErrorHandler(async (error: FastifyError | NixcasError, request, reply) => {
    const status = error instanceof NixcasError ? error.status : (error.statusCode ?? 500)
    if (status >= 500) request.log.error({ err: error }, 'request failed')
    else request.log.debug({ err: error }, 'request refused')
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
    // One line per request comes from our onResponse hook instead of Fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    ...server,
  })
  await fastify.register(nixcasApp, options)
  return fastify
}

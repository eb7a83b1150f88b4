import { createServer, type IncomingMessage, type ServerOptions, type ServerResponse } from 'node:http'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import autoload from '@fastify/autoload'
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify'
import { NixcasError } from './errors.ts'
import { RequestLogController, levelEnabled, logRequest, recordFailure, requestLogger, watchResponse } from './http/request-log.ts'
import { sendNotFound } from './http/send.ts'
import { fastNar } from './http/fast-nar.ts'
import { fastNarInfo, narinfoCacheControl } from './http/fast-narinfo.ts'
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
  const finished = (request: FastifyRequest, reply: FastifyReply, completed: boolean): void => {
    const status = logRequest(request, reply, fastify.stores.root.name, completed)
    fastify.metrics.countRequest(request.routeOptions.url ?? 'unknown', request.method, status)
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
  // Set once the app is registered; the server answers nothing before it listens.
  const fast: { answer?: (request: IncomingMessage, response: ServerResponse) => boolean } = {}
  const fastify = Fastify({
    // One line per request comes from logRequest instead of Fastify's two.
    logController: new RequestLogController(),
    return503OnClosing: true,
    childLoggerFactory: requestLogger,
    forceCloseConnections: 'idle',
    // Fastify's own HTTP/1 server, with cached narinfos and small NARs answered before it (src/http/fast-nar*.ts).
    serverFactory: (handler, raw) => {
      // What Fastify's own factory applies (its options with their defaults filled in).
      const settings = raw as FastifyServerOptions & { http?: ServerOptions }
      const httpServer = createServer(settings.http ?? {}, (request, response) => {
        if (fast.answer?.(request, response) !== true) handler(request, response)
      })
      httpServer.keepAliveTimeout = settings.keepAliveTimeout ?? 72_000
      httpServer.requestTimeout = settings.requestTimeout ?? 0
      httpServer.setTimeout(settings.connectionTimeout ?? 0)
      if ((settings.maxRequestsPerSocket ?? 0) > 0) httpServer.maxRequestsPerSocket = settings.maxRequestsPerSocket ?? null
      return httpServer
    },
    ...server,
  })
  await fastify.register(nixcasApp, options)
  let closing = false
  fastify.addHook('preClose', (done) => {
    closing = true
    done()
  })
  // Request lines are logged at info: then every request goes through Fastify, which logs them.
  const logsRequests = levelEnabled(fastify.log, 'info')
  const open = (): boolean => options.access.readsPublic && !closing && !logsRequests
  const count = (route: string, method: string, status: number): void => options.metrics.countRequest(route, method, status)
  const narinfo = fastNarInfo({
    cached: (hash) => options.cache.cachedNarInfo(hash),
    served: (hash) => options.accessRecorder.path(hash),
    count,
    cacheControl: narinfoCacheControl(options.settings.narinfoMaxAge),
    open,
  })
  const nar = fastNar({
    cached: (name) => options.nars.cachedNar(name),
    served: (name) => options.accessRecorder.nar(name),
    count,
    sent: options.metrics.bytesServed.series({ route: 'nar' }),
    compressNars: options.settings.compressNars,
    open,
  })
  fast.answer = (request, response) => narinfo(request, response) || nar(request, response)
  return fastify
}

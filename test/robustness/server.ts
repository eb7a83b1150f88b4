import type { AddressInfo } from 'node:net'
import Fastify, { LogController, type FastifyServerOptions, type RouteOptions } from 'fastify'
import { nixcasApp, type AppOptions } from '../../src/app.ts'
import type { ServerConfig } from '../../src/config.ts'
import { appOptionsFrom } from '../../src/server.ts'
import { testConfig } from '../helpers/app.ts'
import { silentLogger } from '../helpers/log.ts'

export interface ListeningServer {
  /** What the app was built from: its services, budgets and stores. */
  options: AppOptions
  url: string
  /** Every route the app registered that takes a body: where hostile uploads are sent. */
  writingRoutes: { method: string; url: string }[]
}

const WRITING = new Set(['PUT', 'POST', 'PATCH', 'DELETE'])

/**
 * The real app on a real socket (127.0.0.1, port 0), closed when the test ends. Routes are
 * recorded as they register, so a route added later is attacked too, without a test edit.
 */
export async function listen(t: { teardown: (fn: () => Promise<void>) => void }, overrides: Partial<ServerConfig> = {}): Promise<ListeningServer> {
  const options = await appOptionsFrom(await testConfig(overrides), silentLogger)
  const server: FastifyServerOptions = { loggerInstance: silentLogger, logController: new LogController({ disableRequestLogging: true }), forceCloseConnections: true }
  const app = Fastify(server)
  const writingRoutes: { method: string; url: string }[] = []
  app.addHook('onRoute', (route: RouteOptions) => {
    for (const method of [route.method].flat()) if (WRITING.has(method)) writingRoutes.push({ method, url: route.url })
  })
  await app.register(nixcasApp, options)
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo
  return { options, url: `http://127.0.0.1:${port}`, writingRoutes }
}

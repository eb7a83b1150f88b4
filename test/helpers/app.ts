import type { FastifyInstance } from 'fastify'
import { buildApp } from '../../src/app.ts'
import { resolveServerConfig, type ServerConfig } from '../../src/config.ts'
import { appOptionsFrom } from '../../src/server.ts'
import { silentLogger } from './log.ts'

/**
 * A test's own configuration: a memory store, loopback, no environment, and no load
 * shedding (a busy CI machine must not turn into 503s; the overload test sets its own).
 */
export async function testConfig(overrides: Partial<ServerConfig> = {}): Promise<ServerConfig> {
  const config = await resolveServerConfig({ store: 'memory://' }, {})
  const pressure = { ...config.pressure, maxEventLoopDelay: 0, maxHeapUsedBytes: 0, maxRssBytes: 0 }
  return { ...config, pressure, ...overrides }
}

/** The app, ready for inject(); closed when the test ends. */
export async function build(t: { teardown: (fn: () => Promise<void>) => void }, overrides: Partial<ServerConfig> = {}): Promise<FastifyInstance> {
  const config = await testConfig(overrides)
  const app = await buildApp(await appOptionsFrom(config, silentLogger), { loggerInstance: silentLogger })
  t.teardown(() => app.close())
  await app.ready()
  return app
}

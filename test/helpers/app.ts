import type { FastifyInstance } from 'fastify'
import { buildApp } from '../../src/app.ts'
import { resolveServerConfig, type ServerConfig } from '../../src/config.ts'
import { appOptionsFrom } from '../../src/server.ts'
import { silentLogger } from './log.ts'

/** A test's own configuration: a memory store, loopback, no environment. */
export async function testConfig(overrides: Partial<ServerConfig> = {}): Promise<ServerConfig> {
  return { ...(await resolveServerConfig({ store: 'memory://' }, {})), ...overrides }
}

/** The app, ready for inject(); closed when the test ends. */
export async function build(t: { teardown: (fn: () => Promise<void>) => void }, overrides: Partial<ServerConfig> = {}): Promise<FastifyInstance> {
  const config = await testConfig(overrides)
  const app = await buildApp(await appOptionsFrom(config, silentLogger), { loggerInstance: silentLogger })
  t.teardown(() => app.close())
  await app.ready()
  return app
}

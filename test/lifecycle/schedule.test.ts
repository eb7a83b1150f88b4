import { utimes } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { keys } from '../../src/cas/keys.ts'
import { resolveServerConfig } from '../../src/config.ts'
import { Pins } from '../../src/lifecycle/pins.ts'
import type { ServerConfig } from '../../src/config.ts'
import { buildApp } from '../../src/app.ts'
import type { GcScheduler } from '../../src/lifecycle/schedule.ts'
import { appOptionsFrom } from '../../src/server.ts'
import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { testConfig } from '../helpers/app.ts'
import { silentLogger } from '../helpers/log.ts'
import { fetched } from '../helpers/push.ts'
import { allKeys, openStore, pushedPair } from './scenario.ts'

/** A replica as the server builds it, its scheduler at hand (the test looks instead of a timer). */
async function replica(t: Test, overrides: Partial<ServerConfig>): Promise<FastifyInstance & { gcScheduler: GcScheduler }> {
  const options = await appOptionsFrom(await testConfig(overrides), silentLogger)
  const app = await buildApp(options, { loggerInstance: silentLogger })
  t.teardown(() => app.close())
  await app.ready()
  return Object.assign(app, { gcScheduler: options.gcScheduler })
}

const metric = (text: string, name: string): number | undefined => {
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${name} `))
  return line === undefined ? undefined : Number(line.slice(name.length + 1))
}

t.test('two replicas on one store: only one collects; both report the run in /metrics; a dead replica does not block the next run', async (t) => {
  const { config, path, dep, top } = await pushedPair(t)
  const defaults = await testConfig()
  const gc = { ...defaults.gc, interval: 3600, retain: 0, grace: 0, settle: 0 }
  const one = await replica(t, { stores: config, gc })
  const two = await replica(t, { stores: config, gc })
  const { cas } = openStore(t, config)
  await new Pins(cas.store, '/nix/store').add('keep', [dep.storePath])

  const outcomes = await Promise.all([one.gcScheduler.tick(), two.gcScheduler.tick()])
  t.same(outcomes.filter((outcome) => outcome === 'ran'), ['ran'], `exactly one replica collected (${outcomes.join(', ')})`)
  t.equal(await fetched(one, top), 'absent', 'the unpinned path went')
  t.equal(await fetched(two, dep), 'identical', 'the pinned one stayed')
  t.same(await Promise.all([one.gcScheduler.tick(), two.gcScheduler.tick()]), ['not-due', 'not-due'], 'within the interval nobody collects again')
  t.same((await allKeys(cas.store)).filter((key) => key.startsWith(keys.gcLocks)), [], 'the lock was released')

  for (const app of [one, two]) {
    const text = (await app.inject({ url: '/metrics' })).body
    t.equal(metric(text, 'nixcas_gc_last_deleted_paths'), 1, 'each replica reports the last run')
    t.equal(metric(text, 'nixcas_gc_last_kept_paths'), 1)
    t.ok((metric(text, 'nixcas_gc_last_deleted_objects') ?? 0) > 0)
    t.equal(metric(text, 'nixcas_gc_running'), 0)
    t.equal(metric(text, 'nixcas_store_paths'), 1, 'and the store figures the run left')
    t.equal(metric(text, 'nixcas_store_logical_bytes'), dep.nar.bytes.length)
    t.ok((metric(text, 'nixcas_store_stored_bytes') ?? 0) > 10_000)
    t.match(text, /nixcas_store_objects\{kind="data"\} 1/)
  }

  // A replica died holding the lock, long ago; the last run is due again.
  const stale = keys.gcLock('0000000000-deadbeef0000')
  await cas.store.put(stale, Buffer.from('bid'))
  const longAgo = new Date(Date.now() - 3 * 3600_000)
  await utimes(join(path, stale), longAgo, longAgo)
  await utimes(join(path, keys.gcLast), longAgo, longAgo)
  t.equal(await two.gcScheduler.tick(), 'ran', 'the dead bid is ignored and removed')
  t.same((await allKeys(cas.store)).filter((key) => key.startsWith(keys.gcLocks)), [])
})

t.test('gc settings are checked at start-up, naming the field', async (t) => {
  await t.rejects(resolveServerConfig({ store: 'memory://' }, { NIXCAS_GC_INTERVAL: '10s' }), { message: /gc\.interval.*at least 1m/ })
  await t.rejects(resolveServerConfig({ store: 'memory://' }, { NIXCAS_GC_MAX_SIZE: 'lots' }), { message: /gc\.maxSize/ })
  const config = await resolveServerConfig({ store: 'memory://' }, { NIXCAS_GC_INTERVAL: '1d', NIXCAS_GC_MAX_SIZE: '10G', NIXCAS_GC_NARINFO_WAIT: '5s' })
  t.same([config.gc.interval, config.gc.maxSize, config.gc.narinfoWait], [86_400, 10 * 2 ** 30, 5000])
})

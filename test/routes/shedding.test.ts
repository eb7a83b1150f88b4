import t from 'tap'
import { buildApp } from '../../src/app.ts'
import type { PressureClock, PressureSample } from '../../src/http/pressure.ts'
import { appOptionsFrom } from '../../src/server.ts'
import { testConfig } from '../helpers/app.ts'
import { captureLogger } from '../helpers/log.ts'
import { narOf, narinfoFor, PATH_HASH } from '../helpers/nar-samples.ts'
import { makeGoldenTrees, tempDir } from '../helpers/trees.ts'

/** Sampling driven by the test: `tick` takes one sample of `sample`. */
function drivenSampling(): { clock: PressureClock; sample: PressureSample; tick: () => void; stopped: () => boolean } {
  const ticks = new Set<() => void>()
  let stops = 0
  const sampling = {
    clock: {
      every(_interval: number, tick: () => void) {
        ticks.add(tick)
        return () => {
          ticks.delete(tick)
          stops++
        }
      },
    },
    sample: { eventLoopDelay: 0, heapUsed: 0, rss: 0, live: 0 },
    tick: () => ticks.forEach((tick) => tick()),
    stopped: () => stops > 0 && ticks.size === 0,
  }
  return sampling
}

t.test('while overloaded, downloads are shed and uploads admitted; it ends when load falls', async (t) => {
  const sampling = drivenSampling()
  const { logger, lines } = captureLogger()
  const options = await appOptionsFrom(await testConfig(), logger)
  const pressure = { ...options.pressure, maxEventLoopDelay: 200, recoverPercent: 50, retryAfter: 7, clock: sampling.clock, read: () => sampling.sample }
  const app = await buildApp({ ...options, pressure }, { loggerInstance: logger })
  t.teardown(() => app.close())
  await app.ready()

  const nar = await narOf((await makeGoldenTrees(await tempDir(t))).mixed as string)
  const narUrl = `/nar/${nar.hash}.nar`
  t.equal((await app.inject({ method: 'PUT', url: '/nar/first.nar', payload: nar.bytes })).statusCode, 201)
  t.equal((await app.inject({ method: 'PUT', url: `/${PATH_HASH}.narinfo`, payload: narinfoFor(nar, PATH_HASH) })).statusCode, 204)
  t.equal((await app.inject({ url: narUrl })).statusCode, 200, 'served before any overload')

  const overloaded = async (): Promise<string | undefined> => /\nnixcas_overloaded (\d)\n/.exec((await app.inject({ url: '/metrics' })).body)?.[1]
  t.equal(await overloaded(), '0')
  sampling.sample.eventLoopDelay = 250
  sampling.tick()
  t.equal(await overloaded(), '1', 'a sample above the limit: overloaded')
  const shed = await app.inject({ url: narUrl })
  t.equal(shed.statusCode, 503, 'a NAR download is shed')
  t.equal(shed.headers['retry-after'], '7')
  t.equal(shed.headers['cache-control'], 'no-store', 'no CDN keeps the refusal')
  t.match(shed.body, /overloaded/)
  t.equal((await app.inject({ url: `/${PATH_HASH}.ls` })).statusCode, 503, 'a listing is shed')

  const upload = await app.inject({ method: 'PUT', url: '/nar/second.nar', payload: nar.bytes })
  t.equal(upload.statusCode, 201, 'an upload is admitted')
  t.equal((await app.inject({ method: 'HEAD', url: '/nar/second.nar' })).statusCode, 200, 'the push checks are answered')
  t.equal((await app.inject({ method: 'PUT', url: `/${PATH_HASH}.narinfo`, payload: narinfoFor(nar, PATH_HASH) })).statusCode, 204, 'a narinfo upload is admitted')
  t.equal((await app.inject({ url: `/${PATH_HASH}.narinfo` })).statusCode, 200, 'a narinfo is served (a 5xx there fails a build)')
  t.equal((await app.inject({ url: '/nix-cache-info' })).statusCode, 200)
  t.equal((await app.inject({ url: '/health' })).statusCode, 200, '/health is never shed')
  const metrics = await app.inject({ url: '/metrics' })
  t.equal(metrics.statusCode, 200, '/metrics is never shed')
  t.match(metrics.body, /\nnixcas_http_shed_total\{signal="eventLoopDelay"\} 2\n/)

  sampling.sample.eventLoopDelay = 150
  sampling.tick()
  t.equal((await app.inject({ url: narUrl })).statusCode, 503, 'below the limit but above the low mark: still shed')

  sampling.sample.eventLoopDelay = 20
  sampling.tick()
  t.equal(await overloaded(), '0', 'samples fell: back to normal')
  const served = await app.inject({ url: narUrl })
  t.equal(served.statusCode, 200)
  t.ok(served.rawPayload.equals(nar.bytes))
  t.equal((await app.inject({ url: `/${PATH_HASH}.ls` })).statusCode, 200)

  const changes = lines().filter((line) => line.msg === 'overloaded: shedding NAR and listing downloads' || line.msg === 'load back to normal: shedding ends')
  t.match(changes, [{ level: 40, signal: 'eventLoopDelay', value: 250, limit: 200 }, { level: 30, sample: { eventLoopDelayMs: 20 } }], 'each change of state is logged once')
  t.equal(changes.length, 2)
  t.notOk(lines().some((line) => line.level === 50), 'a shed request is not an error')

  await app.close()
  t.ok(sampling.stopped(), 'sampling stops with the app')
})

t.test('without limits nothing is sampled or shed', async (t) => {
  const sampling = drivenSampling()
  const options = await appOptionsFrom(await testConfig(), captureLogger().logger)
  let reads = 0
  const read = (): PressureSample => {
    reads++
    return { eventLoopDelay: 1e6, heapUsed: 1e12, rss: 1e12, live: 1e12 }
  }
  const app = await buildApp({ ...options, pressure: { ...options.pressure, clock: sampling.clock, read } })
  t.teardown(() => app.close())
  sampling.tick()
  t.equal(reads, 0)
  t.equal((await app.inject({ url: '/nar/0a4rzlmqzq6k4cl9hd8ljymd6y4mnl8b6kgjkrc7w5nimydzrwhi.nar' })).statusCode, 404)
})

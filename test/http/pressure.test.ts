import t from 'tap'
import { PressureGauge, processProbe, sheddable, type PressureLimits, type PressureSample } from '../../src/http/pressure.ts'

const MiB = 2 ** 20
const limits: PressureLimits = { maxEventLoopDelay: 100, maxHeapUsedBytes: 0, maxRssBytes: 0, recoverPercent: 50 }
const calm: PressureSample = { eventLoopDelay: 0, heapUsed: 50 * MiB, rss: 100 * MiB, live: 60 * MiB }
const delay = (eventLoopDelay: number): PressureSample => ({ ...calm, eventLoopDelay })

t.test('enters above the limit, leaves only below the low mark', async (t) => {
  const gauge = new PressureGauge(limits)
  t.notOk(gauge.observe(delay(100)), 'at the limit is not above it')
  t.notOk(gauge.overloaded)
  t.ok(gauge.observe(delay(101)), 'above the limit: a change')
  t.ok(gauge.overloaded)
  t.same(gauge.reason, { signal: 'eventLoopDelay', value: 101, limit: 100 })
  for (const value of [90, 60, 50, 99, 51]) {
    t.notOk(gauge.observe(delay(value)), `${value} ms: between the marks, no change`)
    t.ok(gauge.overloaded, `${value} ms: still overloaded`)
  }
  t.ok(gauge.observe(delay(49)), 'below half the limit: a change')
  t.notOk(gauge.overloaded)
  t.equal(gauge.reason, undefined)
  t.notOk(gauge.observe(delay(99)), 'back in between: stays normal')
  t.notOk(gauge.overloaded)
})

t.test('a single sample decides, in both directions (no stuck state)', async (t) => {
  const gauge = new PressureGauge(limits)
  const states = [5000, 0, 5000, 10, 300, 300, 40].map((value) => {
    gauge.observe(delay(value))
    return gauge.overloaded
  })
  t.same(states, [true, false, true, false, true, true, false])
})

t.test('every signal must be calm to leave', async (t) => {
  const gauge = new PressureGauge({ ...limits, maxHeapUsedBytes: 1000 * MiB })
  gauge.observe({ ...calm, eventLoopDelay: 500, heapUsed: 900 * MiB })
  t.equal(gauge.reason?.signal, 'eventLoopDelay')
  gauge.observe({ ...calm, eventLoopDelay: 0, heapUsed: 1200 * MiB })
  t.equal(gauge.reason?.signal, 'heapUsed', 'the reason follows the signal over its limit')
  gauge.observe({ ...calm, eventLoopDelay: 0, heapUsed: 600 * MiB })
  t.ok(gauge.overloaded, 'the heap is still above its low mark')
  t.equal(gauge.reason?.signal, 'heapUsed')
  gauge.observe({ ...calm, eventLoopDelay: 0, heapUsed: 400 * MiB })
  t.notOk(gauge.overloaded)
})

t.test('a limit of 0 turns its signal off', async (t) => {
  const gauge = new PressureGauge({ maxEventLoopDelay: 0, maxHeapUsedBytes: 0, maxRssBytes: 0, recoverPercent: 50 })
  gauge.observe({ eventLoopDelay: 1e9, heapUsed: 1e12, rss: 1e12, live: 1e12 })
  t.notOk(gauge.overloaded)
})

t.test('RSS sheds only while the memory is in use, and recovers though RSS stays up', async (t) => {
  const gauge = new PressureGauge({ ...limits, maxEventLoopDelay: 0, maxRssBytes: 1000 * MiB })
  gauge.observe({ ...calm, rss: 2000 * MiB, live: 300 * MiB })
  t.notOk(gauge.overloaded, 'RSS kept by the allocator after a GC is not load')
  gauge.observe({ ...calm, rss: 2000 * MiB, live: 1500 * MiB })
  t.ok(gauge.overloaded, 'RSS above the limit and in use')
  t.same(gauge.reason, { signal: 'rss', value: 1500 * MiB, limit: 1000 * MiB })
  gauge.observe({ ...calm, rss: 2000 * MiB, live: 700 * MiB })
  t.ok(gauge.overloaded, 'between the marks')
  gauge.observe({ ...calm, rss: 2000 * MiB, live: 200 * MiB })
  t.notOk(gauge.overloaded, 'the memory was freed: normal again, although RSS did not shrink')
  gauge.observe({ ...calm, rss: 1200 * MiB, live: 1100 * MiB })
  t.ok(gauge.overloaded)
  gauge.observe({ ...calm, rss: 400 * MiB, live: 1100 * MiB })
  t.notOk(gauge.overloaded, 'and RSS falling is a way back too')
})

t.test('what may be shed', async (t) => {
  const cases: [string, string, boolean][] = [
    ['GET', '/nar/0a4rzlmqzq6k4cl9hd8ljymd6y4mnl8b6kgjkrc7w5nimydzrwhi.nar', true],
    ['GET', '/nar/0a4rzlmqzq6k4cl9hd8ljymd6y4mnl8b6kgjkrc7w5nimydzrwhi.nar?x=1', true],
    ['GET', '/hsf304jrmqh22x30v2bfvz22ccrmvk1q.ls', true],
    ['PUT', '/nar/upload.nar.xz', false],
    ['PUT', '/hsf304jrmqh22x30v2bfvz22ccrmvk1q.narinfo', false],
    ['PUT', '/hsf304jrmqh22x30v2bfvz22ccrmvk1q.ls', false],
    ['HEAD', '/nar/upload.nar.xz', false],
    ['GET', '/hsf304jrmqh22x30v2bfvz22ccrmvk1q.narinfo', false],
    ['GET', '/nix-cache-info', false],
    ['GET', '/health', false],
    ['GET', '/metrics', false],
    ['GET', '/health?x=.ls', false],
  ]
  for (const [method, url, expected] of cases) t.equal(sheddable(method, url), expected, `${method} ${url}`)
})

t.test('the process probe reads memory and sees a blocked event loop', async (t) => {
  const probe = processProbe()
  t.teardown(probe.stop)
  const started = Date.now()
  while (Date.now() - started < 200) {
    // Block the event loop: the probe's timer cannot run.
  }
  // Let the probe's timer run once after the block, so it has recorded it.
  await new Promise((resolve) => setTimeout(resolve, 30))
  const sample = probe.read()
  t.ok(sample.eventLoopDelay > 20, `a 200 ms block shows as delay (${sample.eventLoopDelay.toFixed(1)} ms)`)
  t.ok(sample.heapUsed > 0 && sample.live >= sample.heapUsed && sample.rss > 0, 'memory figures')
})

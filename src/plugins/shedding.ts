import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { NixcasError } from '../errors.ts'
import { PressureGauge, processProbe, sheddable, timerClock, type PressureClock, type PressureLimits, type PressureSample } from '../http/pressure.ts'

export interface SheddingOptions extends PressureLimits {
  /** Seconds, sent as Retry-After. */
  retryAfter: number
  /** Milliseconds between samples. */
  sampleInterval: number
  /** Tests drive sampling and give the samples; by default a timer and the process itself. */
  clock?: PressureClock
  read?: () => PressureSample
}

/** A sample for a log line: delay in ms, memory in MiB. */
const summary = (sample: PressureSample): Record<string, number> => ({
  eventLoopDelayMs: Math.round(sample.eventLoopDelay),
  heapUsedMiB: Math.round(sample.heapUsed / 2 ** 20),
  rssMiB: Math.round(sample.rss / 2 ** 20),
  liveMiB: Math.round(sample.live / 2 ** 20),
})

/**
 * Load shedding: samples the process, keeps a PressureGauge, and while it says
 * overloaded answers sheddable requests (see `sheddable`) 503 with Retry-After.
 * Counts shed requests and exposes the state as metrics; logs each change of state.
 */
export default fp(
  async function shedding(fastify: FastifyInstance, options: SheddingOptions) {
    const gauge = new PressureGauge(options)
    const shed = fastify.metrics.counter('nixcas_http_shed_total', 'Requests refused (503) while overloaded, by the signal over its limit')
    fastify.metrics.gauge('nixcas_overloaded', '1 while overloaded (shedding), else 0', () => [[{}, gauge.overloaded ? 1 : 0]])

    if (options.maxEventLoopDelay > 0 || options.maxHeapUsedBytes > 0 || options.maxRssBytes > 0) {
      const probe = options.read ? { read: options.read, stop: () => undefined } : processProbe()
      const stop = (options.clock ?? timerClock).every(options.sampleInterval, () => {
        const sample = probe.read()
        if (!gauge.observe(sample)) return
        if (gauge.overloaded) fastify.log.warn({ ...gauge.reason, sample: summary(sample) }, 'overloaded: shedding NAR and listing downloads')
        else fastify.log.info({ sample: summary(sample) }, 'load back to normal: shedding ends')
      })
      fastify.addHook('onClose', async () => {
        stop()
        probe.stop()
      })
    }

    // A callback, not a promise: this runs for every request, and almost always passes.
    fastify.addHook('onRequest', (request, reply, done) => {
      if (!gauge.overloaded || !sheddable(request.method, request.url)) return done()
      shed.inc({ signal: gauge.reason?.signal ?? 'unknown' })
      // Answered here rather than thrown: a shed request is expected under load, not an error to log.
      const refusal = new NixcasError('OVERLOADED', 'nixcas is overloaded, retry later')
      // Answered without calling done(), and nothing returned: a Reply is thenable, and a
      // hook returning one would be taken for a promise and run the next hooks.
      reply
        .code(refusal.status)
        .header('retry-after', String(options.retryAfter))
        .header('cache-control', 'no-store')
        .type('text/plain; charset=utf-8')
        .send(`${refusal.message}\n`)
    })
  },
  { name: 'nixcas-shedding', fastify: '5.x', dependencies: ['nixcas-services'] },
)

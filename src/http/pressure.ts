/** One reading of the process, taken once per sample interval. */
export interface PressureSample {
  /** Mean event-loop delay over the interval, in ms. */
  eventLoopDelay: number
  heapUsed: number
  rss: number
  /** Memory in use now: heap used plus external (Buffers). Unlike RSS, it falls after a GC. */
  live: number
}

export interface PressureLimits {
  /** Each limit turns its signal on; 0 turns it off. */
  maxEventLoopDelay: number
  maxHeapUsedBytes: number
  maxRssBytes: number
  /** Overload ends once every signal is below this percentage of its limit. */
  recoverPercent: number
}

export type PressureSignal = 'eventLoopDelay' | 'heapUsed' | 'rss'

export interface PressureReading {
  signal: PressureSignal
  value: number
  limit: number
}

/**
 * Whether the process is overloaded, with hysteresis: overload starts when a signal goes
 * above its limit and ends only when every signal is below `recoverPercent` of its limit,
 * so shedding neither flickers at the limit nor outlives the load.
 *
 * RSS alone could never end an overload: the allocator keeps pages after a GC, so RSS
 * stays up with no load at all. The RSS signal is therefore the smaller of RSS and live
 * memory: it is above the limit only while that memory is really in use, and it falls as
 * soon as a GC frees it, whatever RSS does.
 */
export class PressureGauge {
  private tripped: PressureReading | undefined

  constructor(private readonly limits: PressureLimits) {}

  get overloaded(): boolean {
    return this.tripped !== undefined
  }

  /** The signal that is (or last was) above its limit while overloaded. */
  get reason(): PressureReading | undefined {
    return this.tripped
  }

  /** Takes one sample; returns true when the state changed. */
  observe(sample: PressureSample): boolean {
    const readings = this.readings(sample)
    const over = readings.find((reading) => reading.value > reading.limit)
    if (!this.tripped) {
      this.tripped = over
      return over !== undefined
    }
    const calm = readings.every((reading) => reading.value < (reading.limit * this.limits.recoverPercent) / 100)
    this.tripped = calm ? undefined : (over ?? this.tripped)
    return calm
  }

  private readings(sample: PressureSample): PressureReading[] {
    const all: PressureReading[] = [
      { signal: 'eventLoopDelay', value: sample.eventLoopDelay, limit: this.limits.maxEventLoopDelay },
      { signal: 'heapUsed', value: sample.heapUsed, limit: this.limits.maxHeapUsedBytes },
      { signal: 'rss', value: Math.min(sample.rss, sample.live), limit: this.limits.maxRssBytes },
    ]
    return all.filter((reading) => reading.limit > 0)
  }
}

/** What drives sampling; tests pass their own and tick it by hand. */
export interface PressureClock {
  /** Calls `tick` every `interval` ms until the returned function is called. */
  every(interval: number, tick: () => void): () => void
}

export const timerClock: PressureClock = {
  every(interval, tick) {
    const timer = setInterval(tick, interval)
    timer.unref() // sampling never keeps the process alive
    return () => clearInterval(timer)
  },
}

/**
 * Reads the process: how late a 10 ms timer fired, on average since the previous read, and
 * memory. (A timer of our own rather than monitorEventLoopDelay, whose first interval
 * after each reset is not recorded: a stall that starts right after a read would be missed.)
 */
export function processProbe(resolution = 10): { read: () => PressureSample; stop: () => void } {
  let expected = performance.now() + resolution
  let late = 0
  let ticks = 0
  const tick = (): void => {
    const now = performance.now()
    late += Math.max(0, now - expected)
    ticks++
    expected = now + resolution
    timer = setTimeout(tick, resolution).unref()
  }
  let timer = setTimeout(tick, resolution).unref()
  return {
    read() {
      // No tick since the last read: the loop has been held all along, for at least this long.
      const delay = ticks > 0 ? late / ticks : Math.max(0, performance.now() - expected)
      late = 0
      ticks = 0
      const memory = process.memoryUsage()
      return { eventLoopDelay: delay, heapUsed: memory.heapUsed, rss: memory.rss, live: memory.heapUsed + memory.external }
    },
    stop: () => clearTimeout(timer),
  }
}

/**
 * Whether shedding may refuse a request. Only GETs of bodies that are rendered (NARs and
 * listings) are shed: they are what costs. Uploads are admitted and wait for their byte
 * budget instead (Nix does not rewind an upload body to retry a PUT after a 5xx), HEADs
 * answer a push's existence checks, narinfos and nix-cache-info are cheap and a 5xx on
 * them fails a build, and /health and /metrics must answer most when load is high.
 */
export function sheddable(method: string, url: string): boolean {
  if (method !== 'GET') return false
  const query = url.indexOf('?')
  const path = query === -1 ? url : url.slice(0, query)
  return path.startsWith('/nar/') || path.endsWith('.ls')
}

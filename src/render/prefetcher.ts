import type { ByteBudget } from '../budget.ts'
import { setMaxListeners } from 'node:events'

/**
 * One piece of the output: how many bytes fetching it holds, and how to fetch it. A job of
 * size 0 is bytes already in memory: no request, no room in the window.
 */
export interface FetchJob<T = Uint8Array> {
  readonly size: number
  fetch(signal: AbortSignal): Promise<T>
}

export interface PrefetchOptions {
  /** Bytes fetched or being fetched ahead of the consumer (W). */
  windowBytes: number
  /** Requests in flight at once (C). */
  maxRequests: number
  signal?: AbortSignal
  stats?: PrefetchStats
  /** Shared by every prefetcher: bounds all windows together. */
  budget?: ByteBudget
}

/** Live figures of one prefetcher or many (metrics, tests). */
export class PrefetchStats {
  /** Bytes reserved now: in flight, or fetched and not yet taken. */
  buffered = 0
  peakBuffered = 0
  inFlight = 0
  peakInFlight = 0
  fetched = 0
  /**
   * Round trips the consumer waited through, counting each request as one: a fetch
   * started while the consumer was at round trip r is ready at r + 1. With C=1 this is the
   * number of requests; a full window divides it by up to C. Independent of wall time.
   */
  roundTrips = 0
}

interface Started<T> {
  size: number
  result: Promise<T>
  startedAt: number
}

/**
 * Yields the results of `jobs` strictly in order while fetching ahead: up to `windowBytes`
 * and `maxRequests` in flight, waiting, or held by the consumer. It knows every job in advance, so the window is
 * always full. The consumer's pace sets its pace (nothing is fetched beyond the window);
 * when the consumer stops, or a fetch fails, every outstanding fetch is aborted and its
 * buffer dropped.
 */
export async function* prefetch<T>(jobs: Iterable<FetchJob<T>>, options: PrefetchOptions): AsyncGenerator<T> {
  const stats = options.stats ?? new PrefetchStats()
  const controller = new AbortController()
  // One listener per request in flight: up to C of them, by design.
  setMaxListeners(0, controller.signal)
  const abort = (): void => controller.abort(options.signal?.reason)
  options.signal?.addEventListener('abort', abort, { once: true })
  const iterator = jobs[Symbol.iterator]()
  const queue: Started<T>[] = []
  let reserved = 0
  let inFlight = 0
  let clock = 0
  let next = iterator.next()

  const release = (size: number): void => {
    reserved -= size
    stats.buffered -= size
    options.budget?.release(size)
  }
  const hasRoom = (size: number): boolean =>
    inFlight < options.maxRequests &&
    (reserved + size <= options.windowBytes || queue.length === 0) &&
    (size === 0 || options.budget?.tryAcquire(size, reserved === 0) !== false)
  const fill = (): void => {
    while (!next.done && hasRoom(next.value.size)) {
      const job = next.value
      next = iterator.next()
      const started: Started<T> = { size: job.size, result: job.fetch(controller.signal), startedAt: clock }
      if (job.size > 0) {
        reserved += job.size
        stats.buffered += job.size
        stats.peakBuffered = Math.max(stats.peakBuffered, stats.buffered)
        inFlight++
        stats.inFlight++
        stats.peakInFlight = Math.max(stats.peakInFlight, stats.inFlight)
        started.result = started.result.finally(() => {
          inFlight--
          stats.inFlight--
          stats.fetched++
        })
      }
      started.result.catch(() => undefined) // surfaced in order below
      queue.push(started)
    }
  }

  try {
    fill()
    while (queue.length > 0) {
      const head = queue[0] as Started<T>
      const bytes = await head.result
      if (head.size > 0 && head.startedAt + 1 > clock) {
        stats.roundTrips += head.startedAt + 1 - clock
        clock = head.startedAt + 1
      }
      // The consumer holds what it was given until it asks for more: only then is its room
      // in the window given back, so the window bounds what is held, not just what is fetched.
      yield bytes
      queue.shift()
      release(head.size)
      fill()
    }
  } finally {
    options.signal?.removeEventListener('abort', abort)
    if (queue.length > 0) {
      controller.abort(new Error('the consumer stopped reading'))
      for (const started of queue.splice(0)) release(started.size)
    }
  }
}

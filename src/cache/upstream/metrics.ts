import type { Counter, Metrics } from '../../metrics.ts'

/** What one upstream request was for: labels of the per-upstream metrics. */
export type UpstreamRequest = 'cache-info' | 'narinfo' | 'nar'

/**
 * The pull-through counters, labelled by upstream (its URL). Latency is a sum of seconds
 * beside a count of requests, so a scraper gets the mean per interval without histograms.
 */
export class UpstreamMetrics {
  /** narinfo lookups answered by an upstream: hit, miss (404), refused (unsigned, bad), error. */
  readonly lookups: Counter
  /** Lookups answered from the negative cache, no upstream asked. */
  readonly negativeHits: Counter
  /** NAR downloads by outcome: ok, corrupt, failed, dropped (every client left). */
  readonly fetches: Counter
  /** NAR requests that shared a download already running instead of starting one. */
  readonly joins: Counter
  readonly bytes: Counter
  readonly requests: Counter
  readonly errors: Counter
  readonly retries: Counter
  readonly seconds: Counter

  constructor(metrics: Metrics) {
    this.lookups = metrics.counter('nixcas_upstream_narinfo_lookups_total', 'narinfo lookups asked of an upstream, by upstream and outcome (hit, miss, refused, error)')
    this.negativeHits = metrics.counter('nixcas_upstream_negative_hits_total', 'narinfo lookups answered 404 from the negative cache of upstream misses')
    this.fetches = metrics.counter('nixcas_upstream_nar_fetches_total', 'NAR downloads from an upstream, by upstream and outcome (ok, corrupt, failed, dropped)')
    this.joins = metrics.counter('nixcas_upstream_nar_joins_total', 'NAR requests that shared an upstream download already running, by upstream')
    this.bytes = metrics.counter('nixcas_upstream_bytes_total', 'Bytes received from an upstream (as sent, compressed), by upstream')
    this.requests = metrics.counter('nixcas_upstream_requests_total', 'Requests to an upstream, by upstream and request (cache-info, narinfo, nar)')
    this.errors = metrics.counter('nixcas_upstream_errors_total', 'Failed requests to an upstream (errors, timeouts, unexpected status), by upstream and request')
    this.retries = metrics.counter('nixcas_upstream_retries_total', 'Requests to an upstream tried again after a transient failure, by upstream and request')
    this.seconds = metrics.counter('nixcas_upstream_request_seconds_total', 'Seconds until an upstream answered (headers), by upstream and request; divide by nixcas_upstream_requests_total for the mean')
  }

  /** Counts one request to `upstream`, its latency to the answer, and whether it failed. */
  async timed<T>(upstream: string, request: UpstreamRequest, work: () => Promise<T>): Promise<T> {
    const labels = { upstream, request }
    const start = process.hrtime.bigint()
    this.requests.inc(labels)
    try {
      return await work()
    } catch (error) {
      this.errors.inc(labels)
      throw error
    } finally {
      this.seconds.inc(labels, Number(process.hrtime.bigint() - start) / 1e9)
    }
  }
}

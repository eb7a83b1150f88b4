/** A small Prometheus text-format registry: counters with labels, and gauges read on scrape. */
type Labels = Record<string, string>

const escape = (value: string): string => value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')
const labelText = (labels: Labels): string => {
  const parts = Object.entries(labels).map(([name, value]) => `${name}="${escape(value)}"`)
  return parts.length > 0 ? `{${parts.join(',')}}` : ''
}

export class Counter {
  private readonly values = new Map<string, number>()

  constructor(
    readonly name: string,
    readonly help: string,
  ) {}

  inc(labels: Labels = {}, amount = 1): void {
    const key = labelText(labels)
    this.values.set(key, (this.values.get(key) ?? 0) + amount)
  }

  /** One series (fixed labels), its label text made once: for what is counted on every request. */
  series(labels: Labels): (amount?: number) => void {
    const key = labelText(labels)
    return (amount = 1) => void this.values.set(key, (this.values.get(key) ?? 0) + amount)
  }

  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`]
    for (const [labels, value] of this.values) lines.push(`${this.name}${labels} ${value}`)
    return lines.join('\n')
  }
}

export class Gauge {
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly read: () => [Labels, number][],
  ) {}

  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`]
    for (const [labels, value] of this.read()) lines.push(`${this.name}${labelText(labels)} ${value}`)
    return lines.join('\n')
  }
}

export class Metrics {
  private readonly all: (Counter | Gauge)[] = []

  readonly requests = this.counter('nixcas_http_requests_total', 'HTTP requests by route, method and status')
  /**
   * Series of `requests`, each made once: a bounded set (routes are ours, Node's parser knows
   * a fixed list of methods), and counting a request costs a Map lookup.
   */
  private readonly requestSeries = new Map<string, (amount?: number) => void>()
  readonly bytesServed = this.counter('nixcas_http_response_bytes_total', 'Body bytes sent, by route')
  readonly ingestBytes = this.counter('nixcas_ingest_bytes_total', 'NAR bytes ingested (after decompression)')
  readonly ingestedNars = this.counter('nixcas_ingested_nars_total', 'NARs ingested, by outcome')
  readonly storeRequests = this.counter('nixcas_store_requests_total', 'Store operations by instance and operation')
  readonly storeErrors = this.counter('nixcas_store_errors_total', 'Failed store operations by instance and operation')
  readonly storeRetries = this.counter('nixcas_store_retries_total', 'Retries by the retry instance and operation')

  /** Counts an answered request. */
  countRequest(route: string, method: string, status: number): void {
    const id = `${route} ${method} ${status}`
    let count = this.requestSeries.get(id)
    if (count === undefined) this.requestSeries.set(id, (count = this.requests.series({ route, method, status: String(status) })))
    count()
  }

  counter(name: string, help: string): Counter {
    const counter = new Counter(name, help)
    this.all.push(counter)
    return counter
  }

  gauge(name: string, help: string, read: () => [Labels, number][]): Gauge {
    const gauge = new Gauge(name, help, read)
    this.all.push(gauge)
    return gauge
  }

  render(): string {
    return `${this.all.map((metric) => metric.render()).join('\n')}\n`
  }
}

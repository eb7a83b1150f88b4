import type { Logger } from 'pino'
import { isNixcasError, NixcasError } from '../../errors.ts'
import { methodFromNarinfo, type CodecMethod } from '../../codec/methods.ts'
import type { UpstreamSetting } from '../../config/upstreams.ts'
import { parseCacheInfo } from '../../nix/cache-info.ts'
import { parseNarInfo, type NarInfo } from '../../nix/narinfo.ts'
import { validNarInfoSignatures } from '../../nix/narinfo-signing.ts'
import { parsePublicKey, type PublicKey } from '../../nix/signing.ts'
import { parseStorePath } from '../../nix/store-path.ts'
import type { UpstreamMetrics, UpstreamRequest } from './metrics.ts'

/** narinfos and nix-cache-info are small; an upstream sending more is not a binary cache. */
const MAX_TEXT_BYTES = 1024 * 1024

/** What an upstream said about a store path. */
export type UpstreamAnswer =
  | { type: 'found'; narinfo: NarInfo; method: CodecMethod }
  /** 404, 403 or 410: absent, as Nix reads them. */
  | { type: 'missing' }
  /** It has a narinfo we must not use (unsigned, badly signed, malformed, undecodable compression). */
  | { type: 'refused'; reason: string }

export interface UpstreamClientOptions {
  storeDir: string
  /** Keys trusted for every upstream (`upstreamKeys`), beside the upstream's own. */
  extraKeys: readonly PublicKey[]
  maxSignatures: number
  metrics: UpstreamMetrics
  logger: Logger
}

const failed = (message: string, cause?: unknown, transient = true): NixcasError => new NixcasError('UPSTREAM_FAILED', message, { cause, transient })

/** Answers worth asking again: the upstream (or a proxy before it) failing or throttling, not refusing. */
const retryable = (status: number): boolean => status >= 500 || status === 408 || status === 429

/** Waits `ms`, or rejects with the signal's reason once it aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason as Error)
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(signal.reason as Error)
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

/** Reads a small body whole, refusing one past `MAX_TEXT_BYTES`. */
async function boundedText(response: Response, what: string): Promise<string> {
  const chunks: Uint8Array[] = []
  let total = 0
  const body = response.body as AsyncIterable<Uint8Array> | null
  for await (const chunk of body ?? []) {
    total += chunk.length
    if (total > MAX_TEXT_BYTES) throw failed(`${what} is larger than ${MAX_TEXT_BYTES} bytes`)
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}

/**
 * One upstream binary cache over HTTP: its nix-cache-info checked once (a StoreDir other
 * than ours disables it), narinfos fetched within its timeout and accepted only with a
 * valid signature by its keys, NARs streamed with a bound on every pause.
 */
export class UpstreamClient {
  readonly url: string
  readonly priority: number
  private readonly keys: PublicKey[]
  private cacheInfo: Promise<void> | undefined
  private disabled: string | undefined

  constructor(
    private readonly setting: UpstreamSetting,
    private readonly options: UpstreamClientOptions,
  ) {
    this.url = setting.url
    this.priority = setting.priority
    this.keys = [...setting.publicKeys.map(parsePublicKey), ...options.extraKeys]
  }

  /**
   * A request, tried again after a transient failure (network, 5xx, 408, 429) up to the
   * upstream's `attempts`, with exponential backoff and jitter, all within `signal` (the
   * caller's timeout): an upstream that is down costs its attempts, never more than that.
   */
  private async get(path: string, request: UpstreamRequest, signal: AbortSignal): Promise<Response> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.getOnce(path, request, signal)
      } catch (error) {
        if (attempt >= this.setting.attempts || signal.aborted || !isNixcasError(error) || !error.transient) throw error
        const delay = this.setting.backoff * 2 ** (attempt - 1) * (0.5 + Math.random() / 2)
        this.options.metrics.retries.inc({ upstream: this.url, request })
        this.options.logger.warn({ upstream: this.url, request, path, attempt, delay: Math.round(delay), err: error.message }, 'upstream request failed; trying again')
        await pause(delay, signal)
      }
    }
  }

  private async getOnce(path: string, request: UpstreamRequest, signal: AbortSignal): Promise<Response> {
    const url = new URL(path, this.url)
    return this.options.metrics.timed(this.url, request, async () => {
      let response: Response
      try {
        response = await fetch(url, { signal, headers: { 'user-agent': 'nixcas' } })
      } catch (error) {
        throw signal.aborted && isNixcasError(signal.reason) ? signal.reason : failed(`${url.href}: ${(error as Error).message}`, error)
      }
      // Nix reads 404, 403 and 410 as absent (a cache without nix-cache-info has the defaults); anything else but 200 is the upstream failing.
      if (response.status === 200 || (request !== 'nar' && [403, 404, 410].includes(response.status))) return response
      await response.body?.cancel().catch(() => undefined)
      throw failed(`${url.href}: HTTP ${response.status}`, undefined, retryable(response.status))
    })
  }

  /** Checks nix-cache-info once; a failure to fetch it is retried by the next lookup. */
  private checkCacheInfo(signal: AbortSignal): Promise<void> {
    this.cacheInfo ??= (async () => {
      const response = await this.get('nix-cache-info', 'cache-info', signal)
      if (response.status !== 200) await response.body?.cancel().catch(() => undefined)
      const info = parseCacheInfo(response.status === 200 ? await boundedText(response, 'nix-cache-info') : '')
      if (info.storeDir !== this.options.storeDir) {
        this.disabled = `its StoreDir is ${info.storeDir}, not ${this.options.storeDir}`
        this.options.logger.error({ upstream: this.url }, `upstream disabled: ${this.disabled}`)
      }
    })().catch((error: unknown) => {
      this.cacheInfo = undefined
      throw error
    })
    return this.cacheInfo
  }

  /**
   * What this upstream has for a store path hash, within its timeout. Errors (network,
   * timeout, 5xx) throw UPSTREAM_FAILED; the caller turns them into a miss.
   */
  async narInfo(hash: string): Promise<UpstreamAnswer> {
    if (this.disabled !== undefined) return { type: 'refused', reason: this.disabled }
    const signal = AbortSignal.timeout(this.setting.timeout)
    const timedOut = (error: unknown): unknown => (signal.aborted ? failed(`${this.url}: no answer within ${this.setting.timeout} ms`, error) : error)
    try {
      // Both at once: a lookup costs one round trip, also the first. Both are let finish
      // (each is bounded by its attempts and the timeout), so a failure of one never leaves
      // the other running unawaited after the answer.
      const [looked, checked] = await Promise.allSettled([this.get(`${hash}.narinfo`, 'narinfo', signal), this.checkCacheInfo(signal)])
      if (looked.status === 'rejected') throw looked.reason
      if (checked.status === 'rejected') {
        await looked.value.body?.cancel().catch(() => undefined)
        throw checked.reason
      }
      const response = looked.value
      if (this.disabled !== undefined) return { type: 'refused', reason: this.disabled }
      if (response.status !== 200) {
        await response.body?.cancel().catch(() => undefined)
        return { type: 'missing' }
      }
      return this.check(hash, await boundedText(response, 'narinfo'))
    } catch (error) {
      throw timedOut(error)
    }
  }

  private check(hash: string, text: string): UpstreamAnswer {
    let narinfo: NarInfo
    try {
      narinfo = parseNarInfo(text, this.options.storeDir, { maxSignatures: this.options.maxSignatures })
    } catch (error) {
      return { type: 'refused', reason: (error as Error).message }
    }
    if (parseStorePath(narinfo.storePath, this.options.storeDir).hash !== hash) return { type: 'refused', reason: `its narinfo for ${hash} describes ${narinfo.storePath}` }
    const method = methodFromNarinfo(narinfo.compression)
    if (method === undefined) return { type: 'refused', reason: `Compression ${narinfo.compression} cannot be decoded here` }
    const valid = validNarInfoSignatures(narinfo, this.keys, this.options.storeDir)
    if (valid.length === 0 && !this.setting.allowUnsigned) return { type: 'refused', reason: `${narinfo.storePath} carries no valid signature by a trusted key` }
    return { type: 'found', narinfo, method }
  }

  /**
   * The NAR file a narinfo of this upstream names, as sent (compressed). The headers must
   * come within the timeout and so must every piece of the body (a consumer that is slow to
   * pull is not the upstream stalling: the clock runs only while we wait for it).
   */
  async *narFile(narinfo: NarInfo, signal: AbortSignal): AsyncGenerator<Uint8Array> {
    const stalled = new AbortController()
    const combined = AbortSignal.any([signal, stalled.signal])
    const arm = (): NodeJS.Timeout => setTimeout(() => stalled.abort(failed(`${this.url}: the NAR of ${narinfo.storePath} stalled for ${this.setting.timeout} ms`)), this.setting.timeout)
    let timer = arm()
    const response = await this.get(narinfo.url, 'nar', combined).finally(() => clearTimeout(timer))
    const body = response.body?.[Symbol.asyncIterator]()
    if (body === undefined) throw failed(`${this.url}: the NAR of ${narinfo.storePath} has no body`)
    try {
      for (;;) {
        timer = arm()
        let next: IteratorResult<Uint8Array>
        try {
          next = await body.next()
        } catch (error) {
          throw combined.aborted && isNixcasError(combined.reason) ? combined.reason : failed(`${this.url}: the NAR of ${narinfo.storePath}: ${(error as Error).message}`, error)
        } finally {
          clearTimeout(timer)
        }
        if (next.done) return
        this.options.metrics.bytes.inc({ upstream: this.url }, next.value.length)
        yield next.value
      }
    } finally {
      await body.return?.().catch(() => undefined)
    }
  }
}

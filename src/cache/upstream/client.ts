import type { Logger } from 'pino'
import { isNixcasError, NixcasError } from '../../errors.ts'
import { methodFromNarinfo, type CodecMethod } from '../../codec/methods.ts'
import type { UpstreamSetting } from '../../config/upstreams.ts'
import { parseCacheInfo } from '../../nix/cache-info.ts'
import { parseNarInfo, type NarInfo } from '../../nix/narinfo.ts'
import { validNarInfoSignatures } from '../../nix/narinfo-signing.ts'
import { parsePublicKey, type PublicKey } from '../../nix/signing.ts'
import { parseStorePath } from '../../nix/store-path.ts'
import { HttpGetter, type GetAnswer } from './http-get.ts'
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
async function boundedText(answer: GetAnswer, what: string): Promise<string> {
  const chunks: Uint8Array[] = []
  let total = 0
  try {
    for await (const chunk of answer.body as AsyncIterable<Uint8Array>) {
      total += chunk.length
      if (total > MAX_TEXT_BYTES) throw failed(`${what} is larger than ${MAX_TEXT_BYTES} bytes`)
      chunks.push(chunk)
    }
  } finally {
    answer.body.destroy()
  }
  return Buffer.concat(chunks).toString('utf8')
}

/**
 * Drops an answer whose body is not wanted. A small one (a 404's page) is read to its end,
 * so that its connection is kept for the next request (a miss is common, and a new TLS
 * connection per miss is not cheap); a large or unknown one closes its connection.
 */
function discard(answer: GetAnswer): void {
  const length = Number(answer.body.headers['content-length'])
  if (Number.isInteger(length) && length <= 64 * 1024) answer.body.resume().once('error', () => undefined)
  else answer.body.destroy()
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
  private readonly http = new HttpGetter()

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
  private async get(path: string, request: UpstreamRequest, signal: AbortSignal): Promise<GetAnswer> {
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

  private async getOnce(path: string, request: UpstreamRequest, signal: AbortSignal): Promise<GetAnswer> {
    const url = new URL(path, this.url)
    return this.options.metrics.timed(this.url, request, async () => {
      let answer: GetAnswer
      try {
        answer = await this.http.get(url, { 'user-agent': 'nixcas' }, signal)
      } catch (error) {
        throw signal.aborted && isNixcasError(signal.reason) ? signal.reason : failed(`${url.href}: ${(error as Error).message}`, error)
      }
      // Nix reads 404, 403 and 410 as absent (a cache without nix-cache-info has the defaults); anything else but 200 is the upstream failing.
      if (answer.status === 200 || (request !== 'nar' && [403, 404, 410].includes(answer.status))) return answer
      discard(answer)
      throw failed(`${url.href}: HTTP ${answer.status}`, undefined, retryable(answer.status))
    })
  }

  /** Closes the connections kept alive for later requests. */
  close(): void {
    this.http.close()
  }

  /** Checks nix-cache-info once; a failure to fetch it is retried by the next lookup. */
  private checkCacheInfo(signal: AbortSignal): Promise<void> {
    this.cacheInfo ??= (async () => {
      const answer = await this.get('nix-cache-info', 'cache-info', signal)
      if (answer.status !== 200) discard(answer)
      const info = parseCacheInfo(answer.status === 200 ? await boundedText(answer, 'nix-cache-info') : '')
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
      const answer = looked.value
      if (checked.status === 'rejected' || this.disabled !== undefined || answer.status !== 200) discard(answer)
      if (checked.status === 'rejected') throw checked.reason
      if (this.disabled !== undefined) return { type: 'refused', reason: this.disabled }
      if (answer.status !== 200) return { type: 'missing' }
      return this.check(hash, await boundedText(answer, 'narinfo'))
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
   * pull is not the upstream stalling: the clock runs only while we wait for it). One timer
   * for the whole body, re-armed when it fires early, not one per piece.
   */
  async *narFile(narinfo: NarInfo, signal: AbortSignal): AsyncGenerator<Uint8Array> {
    const stalled = new AbortController()
    const combined = AbortSignal.any([signal, stalled.signal])
    const timeout = this.setting.timeout
    /** Since when we wait for the upstream; undefined while the consumer has the last piece. */
    let waitingSince: number | undefined = Date.now()
    const check = (): void => {
      const waited = waitingSince === undefined ? 0 : Date.now() - waitingSince
      if (waited >= timeout) stalled.abort(failed(`${this.url}: the NAR of ${narinfo.storePath} stalled for ${timeout} ms`))
      else timer = setTimeout(check, timeout - waited)
    }
    let timer = setTimeout(check, timeout)
    try {
      const answer = await this.get(narinfo.url, 'nar', combined)
      const bytes = this.options.metrics.bytes.series({ upstream: this.url })
      const body = (answer.body as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]()
      try {
        for (;;) {
          waitingSince = Date.now()
          let next: IteratorResult<Uint8Array>
          try {
            next = await body.next()
          } catch (error) {
            throw combined.aborted && isNixcasError(combined.reason) ? combined.reason : failed(`${this.url}: the NAR of ${narinfo.storePath}: ${(error as Error).message}`, error)
          }
          waitingSince = undefined
          if (next.done) return
          bytes(next.value.length)
          yield next.value
        }
      } finally {
        answer.body.destroy()
      }
    } finally {
      clearTimeout(timer)
    }
  }
}

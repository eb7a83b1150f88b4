import { LRUCache } from 'lru-cache'
import { upToEntries } from '../../lru-entries.ts'
import { SharedWork } from '../../shared-work.ts'
import type { Logger } from 'pino'
import type { CodecMethod } from '../../codec/methods.ts'
import { renderNarInfo, type NarInfo } from '../../nix/narinfo.ts'
import { signNarInfo } from '../../nix/narinfo-signing.ts'
import { encodeNixbase32 } from '../../nix/nixbase32.ts'
import type { SecretKey } from '../../nix/signing.ts'
import type { UpstreamClient } from './client.ts'
import type { UpstreamMetrics } from './metrics.ts'

/** A path known from an upstream's verified narinfo, not (yet) stored here. */
export interface UpstreamPath {
  /** Its store path hash. */
  hash: string
  upstream: UpstreamClient
  /** The upstream's narinfo, as it signed it. */
  narinfo: NarInfo
  /** How the upstream's NAR file is compressed. */
  method: CodecMethod
  /** What we answer: our NAR URL, uncompressed, its signatures and ours. */
  text: string
}

export interface UpstreamNarInfosOptions {
  storeDir: string
  signingKeys: readonly SecretKey[]
  /** Found and missing entries kept, each. */
  entries: number
  negativeTtlMs: number
  metrics: UpstreamMetrics
  logger: Logger
}

/**
 * narinfo pull-through: a path not stored here is asked of the upstreams in priority
 * order, and the first verified narinfo wins. It is answered pointing at our own
 * `nar/<narhash>.nar?hash=<store path hash>` (Compression: none, as every NAR here is
 * served), with the upstream's
 * signatures kept (they sign the fingerprint, not the URL) and ours added, so clients may
 * trust either key. A miss of every upstream is remembered for `negativeTtlMs`; an upstream
 * that fails or is slow is a miss now and is asked again next time. Nothing here ever
 * fails: Nix reads a 5xx on a narinfo as a failed build, and a 404 as "try elsewhere".
 */
export class UpstreamNarInfos {
  private readonly found: LRUCache<string, UpstreamPath>
  private readonly byNarHash: LRUCache<string, UpstreamPath>
  private readonly missing: LRUCache<string, true>
  /** Lookups in progress by store path hash: concurrent requests for one path ask once. */
  private readonly lookups = new SharedWork<string, UpstreamPath | undefined>()
  private readonly upstreams: UpstreamClient[]

  constructor(
    upstreams: readonly UpstreamClient[],
    private readonly options: UpstreamNarInfosOptions,
  ) {
    // A stable sort: equal priorities keep the configured order.
    this.upstreams = [...upstreams].sort((a, b) => a.priority - b.priority)
    this.found = new LRUCache(upToEntries(options.entries))
    this.byNarHash = new LRUCache(upToEntries(options.entries))
    this.missing = new LRUCache({ ...upToEntries(options.entries), ttl: Math.max(1, options.negativeTtlMs) })
  }

  get configured(): boolean {
    return this.upstreams.length > 0
  }

  /** The upstream path whose NAR has this hash (nixbase32), if a narinfo naming it was served. */
  byNar(narHashBase32: string): UpstreamPath | undefined {
    return this.byNarHash.get(narHashBase32)
  }

  /** Closes the upstreams' idle connections (the server is closing). */
  close(): void {
    for (const upstream of this.upstreams) upstream.close()
  }

  /** Forgets a path (its NAR turned out corrupt): the next lookup asks the upstreams again. */
  forget(path: UpstreamPath): void {
    if (this.found.peek(path.hash) === path) this.found.delete(path.hash)
    const narHash = encodeNixbase32(path.narinfo.narHash.digest)
    if (this.byNarHash.peek(narHash) === path) this.byNarHash.delete(narHash)
  }

  /** The path some upstream has under this store path hash, or undefined (never fails). */
  lookup(hash: string): Promise<UpstreamPath | undefined> {
    if (this.upstreams.length === 0) return Promise.resolve(undefined)
    const known = this.found.get(hash)
    if (known !== undefined) return Promise.resolve(known)
    if (this.missing.get(hash) !== undefined) {
      this.options.metrics.negativeHits.inc()
      return Promise.resolve(undefined)
    }
    // No signal: a lookup is never abandoned (its answer is remembered for the next request).
    return this.lookups.run(hash, () => this.ask(hash))
  }

  private async ask(hash: string): Promise<UpstreamPath | undefined> {
    let anyFailed = false
    for (const upstream of this.upstreams) {
      const labels = { upstream: upstream.url }
      let answer
      try {
        answer = await upstream.narInfo(hash)
      } catch (error) {
        anyFailed = true
        this.options.metrics.lookups.inc({ ...labels, outcome: 'error' })
        this.options.logger.warn({ ...labels, hash, err: error }, 'upstream narinfo lookup failed; answering as a miss')
        continue
      }
      if (answer.type === 'missing') {
        this.options.metrics.lookups.inc({ ...labels, outcome: 'miss' })
        continue
      }
      if (answer.type === 'refused') {
        this.options.metrics.lookups.inc({ ...labels, outcome: 'refused' })
        this.options.logger.warn({ ...labels, hash, reason: answer.reason }, 'upstream narinfo refused')
        continue
      }
      this.options.metrics.lookups.inc({ ...labels, outcome: 'hit' })
      const path = this.remember(hash, upstream, answer.narinfo, answer.method)
      this.options.logger.info({ ...labels, storePath: answer.narinfo.storePath }, 'narinfo pulled from upstream')
      return path
    }
    // Only definite answers are remembered: an upstream that was down may have it next time.
    if (!anyFailed) this.missing.set(hash, true)
    return undefined
  }

  private remember(hash: string, upstream: UpstreamClient, narinfo: NarInfo, method: CodecMethod): UpstreamPath {
    const narHash = encodeNixbase32(narinfo.narHash.digest)
    // The store path hash rides along (`?hash=`, as other Nix caches write it): a replica that
    // never saw this narinfo can still pull the NAR a client asks it for (see PullThrough.open).
    const served: NarInfo = { ...narinfo, url: `nar/${narHash}.nar?hash=${hash}`, compression: 'none' }
    delete served.fileHash
    delete served.fileSize
    const signed = this.options.signingKeys.length > 0 ? signNarInfo(served, this.options.signingKeys, this.options.storeDir) : served
    const path: UpstreamPath = { hash, upstream, narinfo, method, text: renderNarInfo(signed) }
    this.found.set(hash, path)
    this.byNarHash.set(narHash, path)
    return path
  }
}

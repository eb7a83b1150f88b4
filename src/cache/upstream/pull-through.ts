import { createHash } from 'node:crypto'
import type { Logger } from 'pino'
import type { ByteBudget } from '../../budget.ts'
import { decode } from '../../codec/decode.ts'
import { isNixcasError, NixcasError } from '../../errors.ts'
import { formatNixHash } from '../../nix/hash.ts'
import { encodeNixbase32 } from '../../nix/nixbase32.ts'
import type { NarInfo } from '../../nix/narinfo.ts'
import type { NarRange } from '../../render/render.ts'
import type { BinaryCache } from '../binary-cache.ts'
import type { NarService } from '../nar-service.ts'
import { Flight } from './flight.ts'
import { Window, type Keep } from './keep.ts'
import type { UpstreamMetrics } from './metrics.ts'
import type { UpstreamNarInfos, UpstreamPath } from './narinfos.ts'
import type { Spool } from './spool.ts'

export interface PullThroughOptions {
  /** Decoded bytes of one download kept for the clients sharing it. */
  windowBytes: number
  /** Shared by every window (the NAR read-ahead budget). */
  budget: ByteBudget
  /** Where whole downloads go so that clients need not wait for the ingest; none: always a window. */
  spool?: Spool
  metrics: UpstreamMetrics
  logger: Logger
}

/** A NAR that can be served before it is stored: its size, and its bytes by range. */
export interface PulledNar {
  size: number
  read(range: NarRange, signal: AbortSignal): AsyncGenerator<Uint8Array>
}

/** Errors that mean the upstream's bytes are not the NAR its narinfo describes. */
const CORRUPTION = new Set(['BAD_REQUEST', 'BAD_NAR', 'TOO_LARGE'])

const corrupt = (path: UpstreamPath, why: string, cause?: unknown): NixcasError => {
  const { narinfo } = path
  const message = `${path.upstream.url}: the NAR of ${narinfo.storePath} does not match its narinfo (NarHash ${formatNixHash(narinfo.narHash)}, NarSize ${narinfo.narSize}): ${why}`
  return new NixcasError('UPSTREAM_CORRUPT', message, { cause })
}

/**
 * The decoded NAR as it arrives, hashed on the way: after the last piece it ends only if
 * the size and hash are the narinfo's, else it throws UPSTREAM_CORRUPT (so does a file that
 * does not decode). This is what lets the last byte go to clients at the download's pace.
 */
async function* checked(path: UpstreamPath, source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  const { narHash, narSize } = path.narinfo
  const hash = createHash(narHash.algorithm)
  let size = 0
  try {
    for await (const piece of source) {
      size += piece.length
      if (size > narSize) throw corrupt(path, `it has more than ${narSize} bytes`)
      hash.update(piece)
      yield piece
    }
  } catch (error) {
    throw isNixcasError(error) && CORRUPTION.has(error.code) ? corrupt(path, error.message, error) : error
  }
  if (size !== narSize) throw corrupt(path, `it has ${size} bytes`)
  if (!hash.digest().equals(narHash.digest)) throw corrupt(path, 'its hash differs')
}

/**
 * NAR pull-through: a GET of a NAR known only from an upstream narinfo downloads it once
 * (see Flight for the sharing rules) into a spool file when the spool has room (else a
 * window), decodes it as the narinfo's Compression says, checks it against NarHash and
 * NarSize as it arrives, and ingests the decoded bytes through the bounded ingest with the
 * same expectation. The path is recorded (PathInfo, our signature added) only
 * when the whole NAR checked out; from then on it is an ordinary local path. A NAR whose
 * bytes do not check out is never stored, and its narinfo is forgotten.
 */
export class PullThrough {
  /** Downloads by NAR hash; a promise, since a spool file is opened before the download starts. */
  private readonly flights = new Map<string, Promise<Flight>>()

  constructor(
    private readonly cache: BinaryCache,
    private readonly nars: NarService,
    private readonly narinfos: UpstreamNarInfos,
    private readonly options: PullThroughOptions,
  ) {}

  /**
   * The NAR of this hash if an upstream narinfo named it, once its download (started here,
   * or joined) has its first bytes: a download that fails before that (the upstream down,
   * its NAR missing) throws, so the client gets an error status rather than a response cut
   * short. Undefined when no upstream narinfo names it.
   */
  async open(narHashBase32: string, pathHash?: string): Promise<PulledNar | undefined> {
    const path = this.narinfos.byNar(narHashBase32) ?? (await this.byPathHash(narHashBase32, pathHash))
    if (path === undefined) return undefined
    const size = path.narinfo.narSize
    let flying = this.flights.get(narHashBase32)
    if (flying === undefined) {
      // Stored since the caller looked? A download that finished has written its record before it left the map.
      if ((await this.nars.entry(narHashBase32)) !== undefined) return { size, read: (range, signal) => this.local(narHashBase32, range, signal) }
      flying = this.flights.get(narHashBase32)
    }
    if (flying === undefined) flying = this.start(narHashBase32, path)
    else this.options.metrics.joins.inc({ upstream: path.upstream.url })
    const flight = await flying
    await flight.ready
    return { size, read: (range, signal) => flight.read(range, signal) }
  }

  /**
   * The upstream path a NAR URL's `?hash=` names, when its verified narinfo has this NAR: how
   * a replica serves a NAR URL another replica handed out (behind a load balancer, Nix's
   * narinfo and NAR requests may reach different processes, and upstream narinfos live in
   * memory). The hint is only a hint: the narinfo is looked up and checked as for a narinfo
   * request, and a NarHash that differs is a miss.
   */
  private async byPathHash(narHashBase32: string, pathHash: string | undefined): Promise<UpstreamPath | undefined> {
    if (pathHash === undefined) return undefined
    const path = await this.narinfos.lookup(pathHash)
    return path !== undefined && encodeNixbase32(path.narinfo.narHash.digest) === narHashBase32 ? path : undefined
  }

  /** Resolves once every download now in progress has ended (stored or not). */
  async idle(): Promise<void> {
    const flights = await Promise.all(this.flights.values())
    await Promise.all(flights.map((flight) => flight.settled.catch(() => undefined)))
  }

  /** Downloads in progress (tests, metrics). */
  get downloads(): number {
    return this.flights.size
  }

  /** Stops every download (the server is closing) and waits for them to end. */
  async close(): Promise<void> {
    for (const flight of await Promise.all(this.flights.values())) flight.abort(new NixcasError('ABORTED', 'the server is closing'))
    await this.idle()
    this.narinfos.close()
  }

  private async *local(narHash: string, range: NarRange, signal: AbortSignal): AsyncGenerator<Uint8Array> {
    const nar = await this.nars.find(narHash, signal)
    if (nar === undefined) throw new NixcasError('INTERNAL', `the NAR ${narHash} was stored but cannot be found`)
    yield* this.nars.render(nar, range, signal)
  }

  /** A spool file for the NAR when the spool has room (and works), else a window. */
  private async keep(narinfo: NarInfo, log: Logger): Promise<Keep> {
    const file = await this.options.spool?.file(narinfo.narSize).catch((error: unknown) => {
      log.warn({ err: error }, 'cannot open a spool file; the download goes at the pace of the ingest')
      return undefined
    })
    return file ?? new Window(this.options.windowBytes, this.options.budget)
  }

  private start(narHash: string, path: UpstreamPath): Promise<Flight> {
    const log = this.options.logger.child({ upstream: path.upstream.url, storePath: path.narinfo.storePath })
    const flying = this.keep(path.narinfo, log).then((keep) => this.fly(narHash, path, keep, log))
    this.flights.set(narHash, flying)
    return flying
  }

  private fly(narHash: string, path: UpstreamPath, keep: Keep, log: Logger): Flight {
    const { narinfo, upstream } = path
    const started = Date.now()
    const flight = new Flight({
      size: narinfo.narSize,
      keep,
      source: (signal) => {
        const file = upstream.narFile(narinfo, signal)
        // An uncompressed file is the NAR: checked as it comes (its size too), nothing to decode.
        return checked(path, path.method === 'none' ? file : decode(file, path.method, { signal, maxOutputBytes: narinfo.narSize }))
      },
      consume: (bytes, signal) => this.store(path, bytes, signal),
      local: (range, signal) => this.local(narHash, range, signal),
      onDownloaded: () => log.info({ ms: Date.now() - started, narSize: narinfo.narSize }, 'NAR downloaded from upstream and checked'),
    })
    log.info({ narSize: narinfo.narSize, compression: narinfo.compression, spooled: !keep.paced }, 'pulling NAR from upstream')
    flight.settled
      .then(
        () => {
          this.options.metrics.fetches.inc({ upstream: upstream.url, outcome: 'ok' })
          log.info({ ms: Date.now() - started, narSize: narinfo.narSize }, 'NAR pulled from upstream and stored')
        },
        (error: unknown) => {
          const outcome = flight.dropped ? 'dropped' : isNixcasError(error, 'UPSTREAM_CORRUPT') ? 'corrupt' : 'failed'
          this.options.metrics.fetches.inc({ upstream: upstream.url, outcome })
          if (outcome === 'corrupt') {
            this.narinfos.forget(path)
            log.error({ err: error }, 'upstream NAR does not match its narinfo: not stored')
          } else if (outcome === 'dropped') log.info('upstream NAR download dropped: every client went away')
          else log.warn({ err: error }, 'upstream NAR download failed')
        },
      )
      .finally(() => this.flights.delete(narHash))
    return flight
  }

  /** Ingests the decoded NAR against its narinfo, then records the path. */
  private async store(path: UpstreamPath, bytes: AsyncIterable<Uint8Array>, signal: AbortSignal): Promise<void> {
    const { narinfo } = path
    try {
      // The flight hands over what it yields (a window keeps a copy of its own, a spool file's reads are fresh): no copy here.
      const result = await this.cache.ingest(bytes, { method: 'none', expectedNarHash: narinfo.narHash, maxNarSize: narinfo.narSize, signal, handOver: true })
      if (result.narSize !== narinfo.narSize) throw new NixcasError('BAD_NAR', `the NAR has ${result.narSize} bytes, its narinfo says ${narinfo.narSize}`)
      await this.cache.recordPath(path.hash, narinfo, result.root)
    } catch (error) {
      if (signal.aborted || !isNixcasError(error) || !CORRUPTION.has(error.code)) throw error
      throw corrupt(path, error.message, error)
    }
  }
}

import { pino, type Logger } from 'pino'
import type { FastifyInstance } from 'fastify'
import { buildApp, type AppOptions } from './app.ts'
import type { ServerConfig } from './config.ts'
import { prepareServer } from './config/prepare.ts'
import { ByteBudget } from './budget.ts'
import { BufferPool } from './buffer-pool.ts'
import { packBufferBytes } from './castore/data-pack.ts'
import { AccessPolicy } from './http/auth.ts'
import { Metrics } from './metrics.ts'
import { PrefetchStats } from './render/prefetcher.ts'
import { BinaryCache } from './cache/binary-cache.ts'
import { NarService } from './cache/nar-service.ts'
import { Cas } from './cas/cas.ts'
import { DedupIndex } from './cas/dedup-index.ts'
import { IngestWorkers } from './ingest/parse/workers.ts'
import { InstrumentedStore } from './stores/instrumented.ts'
import { UpstreamClient } from './cache/upstream/client.ts'
import { UpstreamMetrics } from './cache/upstream/metrics.ts'
import { UpstreamNarInfos } from './cache/upstream/narinfos.ts'
import { PullThrough } from './cache/upstream/pull-through.ts'
import { Spool } from './cache/upstream/spool.ts'
import { parsePublicKey } from './nix/signing.ts'
import { AccessRecorder } from './lifecycle/access-recorder.ts'
import { GcScheduler } from './lifecycle/schedule.ts'
import { defaultSettle } from './lifecycle/tombstones.ts'

/** How often each replica reads the index segments others wrote. */
const DEDUP_REFRESH_MS = 60_000

/** Everything the app needs, built from configuration: stores, keys, services. */
export async function appOptionsFrom(config: ServerConfig, logger: Logger): Promise<AppOptions> {
  const metrics = new Metrics()
  const { keys: { signingKeys, trustedUploadKeys }, stack } = await prepareServer(config, {
    logger,
    instrument: (store) => new InstrumentedStore(store, metrics.storeRequests, metrics.storeErrors),
    onRetry: (store, operation) => metrics.storeRetries.inc({ store, operation }),
  })
  const prefetchStats = new PrefetchStats()
  metrics.gauge('nixcas_process_memory_bytes', 'Memory of this process by kind (rss; V8 heapUsed and heapTotal; external, of which arrayBuffers: Buffers outside the heap)', () => {
    const usage = process.memoryUsage()
    return (['rss', 'heapTotal', 'heapUsed', 'external', 'arrayBuffers'] as const).map((kind) => [{ kind }, usage[kind]])
  })
  const uploadBudget = new ByteBudget(config.totalUploadBytes)
  const renderBudget = new ByteBudget(config.totalWindowBytes)
  metrics.gauge('nixcas_upload_budget_bytes', 'Bytes of uploads in flight, over all requests', () => [[{}, uploadBudget.inUse]])
  metrics.gauge('nixcas_prefetch_buffered_bytes', 'Bytes held by NAR prefetch windows (in flight or waiting)', () => [[{}, prefetchStats.buffered]])
  metrics.gauge('nixcas_prefetch_requests_in_flight', 'Chunk requests in flight for NAR responses', () => [[{}, prefetchStats.inFlight]])
  const cas = new Cas(stack.root)
  const dedup = new DedupIndex(config.dedupIndexEntries, {
    publishMs: config.dedupPublishInterval * 1000,
    onError: (error) => logger.warn({ err: error }, 'writing a dedup index segment failed'),
  })
  metrics.gauge('nixcas_dedup_index_entries', 'Chunks the dedup index knows', () => [[{}, dedup.size]])
  const nars = new NarService(cas, { windowBytes: config.windowBytes, maxRequests: config.maxRequests, budget: renderBudget, stats: prefetchStats, wholeNarCacheBytes: config.wholeNarCacheBytes })
  metrics.gauge('nixcas_buffer_pool_free_bytes', 'Bytes of NAR read and output buffers waiting free to be reused (at most totalWindowBytes; let go after 30 s unused)', () => [[{}, nars.poolFreeBytes]])
  const upstreamMetrics = new UpstreamMetrics(metrics)
  const upstreamLogger = logger.child({ component: 'upstream' })
  const extraKeys = config.upstreamKeys.map(parsePublicKey)
  const upstreams = new UpstreamNarInfos(
    config.upstreams.map((upstream) => new UpstreamClient(upstream, { storeDir: config.storeDir, extraKeys, maxSignatures: config.maxSignatures, metrics: upstreamMetrics, logger: upstreamLogger })),
    { storeDir: config.storeDir, signingKeys, entries: config.upstreamCacheEntries, negativeTtlMs: config.upstreamNegativeTtl * 1000, metrics: upstreamMetrics, logger: upstreamLogger },
  )
  const cache = new BinaryCache(cas, {
    upstreams: upstreams.configured ? upstreams : undefined,
    parser: new IngestWorkers(),
    storeDir: config.storeDir,
    priority: config.priority,
    signingKeys,
    trustedUploadKeys,
    requireUploadSignature: config.requireUploadSignature,
    narinfoCacheEntries: config.narinfoCacheEntries,
    allowNarinfoOverwrite: config.allowNarinfoOverwrite,
    maxSignatures: config.maxSignatures,
    maxLogSize: config.maxLogSize,
    gcWait: config.gc.narinfoWait,
    ingest: {
      maxNarSize: config.maxNarSize,
      maxBytesInFlight: config.uploadBytesInFlight,
      packSize: config.packSize,
      dedup,
      onBytes: (count) => metrics.ingestBytes.inc({}, count),
      budget: uploadBudget,
      // A few full-size pack buffers wait free between uploads; unused for 30 to 60 s, they go.
      packBuffers: new BufferPool(4 * packBufferBytes(config.packSize), { blockBytes: packBufferBytes(config.packSize) }),
    },
  })
  const spool = upstreams.configured && config.upstreamSpoolBytes > 0 ? await Spool.open(config.upstreamSpoolDir, config.upstreamSpoolBytes) : undefined
  if (spool) metrics.gauge('nixcas_upstream_spool_bytes', 'Bytes reserved by upstream NAR downloads spooled to local disk', () => [[{}, spool.budget.inUse]])
  const pullThrough = new PullThrough(cache, nars, upstreams, { windowBytes: config.upstreamWindowBytes, budget: renderBudget, spool, metrics: upstreamMetrics, logger: upstreamLogger })
  metrics.gauge('nixcas_upstream_downloads', 'Upstream NAR downloads in progress', () => [[{}, pullThrough.downloads]])
  const access = new AccessPolicy(
    { tokens: config.auth.writeTokens, users: config.auth.writeUsers },
    { tokens: config.auth.readTokens, users: config.auth.readUsers },
    config.host,
  )
  const accessRecorder = new AccessRecorder(stack.root, { maxEntries: config.access.maxEntries, onError: (error) => logger.warn({ err: error }, 'writing access records failed') })
  accessRecorder.start(config.access.flushInterval * 1000)
  metrics.gauge('nixcas_access_pending_entries', 'Paths and NARs served since the last access record was written', () => [[{}, accessRecorder.size]])
  metrics.gauge('nixcas_access_dropped_entries', 'Accesses not recorded because the recorder was full', () => [[{}, accessRecorder.dropped]])
  const gcScheduler = new GcScheduler(cas, {
    interval: config.gc.interval * 1000,
    retain: config.gc.retain * 1000,
    ...(config.gc.maxSize === undefined ? {} : { maxSize: config.gc.maxSize }),
    grace: config.gc.grace * 1000,
    settle: config.gc.settle === undefined ? defaultSettle(config.narinfoMaxAge) : config.gc.settle * 1000,
    storeDir: config.storeDir,
    instances: [...stack.instances.values()],
    logger: logger.child({ component: 'gc' }),
  })
  gcScheduler.register(metrics)
  return {
    cache,
    nars,
    accessRecorder,
    gcScheduler,
    pullThrough,
    stack,
    metrics,
    prefetchStats,
    access,
    uploadBudget,
    settings: {
      narinfoMaxAge: config.narinfoMaxAge,
      notFoundMaxAge: config.notFoundMaxAge,
      compressNars: config.compressNars,
      uploadIdleTimeout: config.uploadIdleTimeout * 1000,
    },
    pressure: config.pressure,
  }
}

/** Listens, logs what it serves, and shuts down gracefully on SIGINT and SIGTERM. */
export async function startServer(config: ServerConfig, logger: Logger = pino({ level: config.logLevel })): Promise<FastifyInstance> {
  const options = await appOptionsFrom(config, logger)
  const app = await buildApp(options, { loggerInstance: logger })
  logger.info({ stores: options.stack.describe() }, `store composition, root "${options.stack.root.name}"`)
  for (const key of options.cache.signingKeyNames) logger.info({ key }, 'signing narinfos')
  for (const upstream of config.upstreams) logger.info({ upstream: upstream.url, priority: upstream.priority, keys: upstream.publicKeys.length + config.upstreamKeys.length, allowUnsigned: upstream.allowUnsigned }, 'pulling through from upstream')
  if (options.access.writesClosed) logger.warn(`writes are refused: ${config.host} is not loopback-only and no write credentials are configured`)
  else if (options.access.anonymousWrites) logger.warn('anonymous writes are allowed: the server listens on loopback only and no write credentials are configured')

  let closing = false
  const shutdown = (signal: string): void => {
    if (closing) return
    closing = true
    logger.info({ signal }, 'shutting down: finishing requests in flight')
    const force = setTimeout(() => {
      logger.error('requests still running after the shutdown timeout; exiting')
      process.exit(1)
    }, config.shutdownTimeout)
    force.unref()
    app.close().then(
      () => logger.info('stopped'),
      (error: unknown) => {
        logger.error({ err: error }, 'error while stopping')
        process.exitCode = 1
      },
    )
  }
  process.once('SIGINT', shutdown)
  process.once('SIGTERM', shutdown)
  await app.listen({ host: config.host, port: config.port })
  // Dedup learns what is stored (other replicas' ingests too) in the background: a miss
  // stores a chunk twice, it never fails a request.
  const refresh = new AbortController()
  const learn = (): void => {
    options.cache.refreshDedup(refresh.signal).then(
      (learned) => learned > 0 && logger.info({ learned }, 'dedup index refreshed'),
      (error: unknown) => refresh.signal.aborted || logger.warn({ err: error }, 'dedup index refresh failed'),
    )
  }
  learn()
  options.gcScheduler.start()
  const timer = setInterval(learn, DEDUP_REFRESH_MS).unref()
  const stopLearning = (): void => {
    clearInterval(timer)
    refresh.abort()
  }
  process.once('SIGINT', stopLearning)
  process.once('SIGTERM', stopLearning)
  return app
}

import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { ByteBudget } from '../budget.ts'
import type { AccessPolicy } from '../http/auth.ts'
import type { Metrics } from '../metrics.ts'
import type { PrefetchStats } from '../render/prefetcher.ts'
import type { BinaryCache } from '../cache/binary-cache.ts'
import type { NarService } from '../cache/nar-service.ts'
import type { PullThrough } from '../cache/upstream/pull-through.ts'
import type { StoreStack } from '../stores/compose.ts'
import type { AccessRecorder } from '../lifecycle/access-recorder.ts'
import type { GcScheduler } from '../lifecycle/schedule.ts'

/** How routes answer: cache lifetimes and NAR compression. */
export interface HttpSettings {
  narinfoMaxAge: number
  notFoundMaxAge: number
  compressNars: boolean
  /** Milliseconds an upload may send nothing while its body is awaited; 0: no limit. */
  uploadIdleTimeout?: number
}

export interface ServicesOptions {
  cache: BinaryCache
  nars: NarService
  /** NARs known only from an upstream narinfo, downloaded once and stored as they are served. */
  pullThrough: PullThrough
  stack: StoreStack
  metrics: Metrics
  prefetchStats: PrefetchStats
  access: AccessPolicy
  settings: HttpSettings
  /** Shared by every upload: NAR ingests, and the small bodies routes read whole. */
  uploadBudget: ByteBudget
  /** What this replica served, flushed to the store for retention and LRU eviction. */
  accessRecorder: AccessRecorder
  /** Scheduled garbage collection and the recorded store figures (started by the server, looked at by tests). */
  gcScheduler: GcScheduler
}

declare module 'fastify' {
  interface FastifyInstance {
    cache: BinaryCache
    nars: NarService
    pullThrough: PullThrough
    stores: StoreStack
    metrics: Metrics
    prefetchStats: PrefetchStats
    access: AccessPolicy
    settings: HttpSettings
    uploadBudget: ByteBudget
    accessRecorder: AccessRecorder
    gcScheduler: GcScheduler
  }
}

/** The shared services every route uses, as decorators; the store stack closes with the app. */
export default fp(
  async function services(fastify: FastifyInstance, options: ServicesOptions) {
    fastify.decorate('cache', options.cache)
    fastify.decorate('nars', options.nars)
    fastify.decorate('pullThrough', options.pullThrough)
    fastify.decorate('stores', options.stack)
    fastify.decorate('metrics', options.metrics)
    fastify.decorate('prefetchStats', options.prefetchStats)
    fastify.decorate('access', options.access)
    fastify.decorate('settings', options.settings)
    fastify.decorate('uploadBudget', options.uploadBudget)
    fastify.decorate('accessRecorder', options.accessRecorder)
    fastify.decorate('gcScheduler', options.gcScheduler)
    fastify.addHook('onClose', async () => {
      options.gcScheduler.stop()
      // Before the stores close: what this replica served since its last flush is written.
      await options.accessRecorder.close().catch(() => undefined)
      await options.pullThrough.close()
      await options.cache.close()
      await options.stack.close()
    })
  },
  { name: 'nixcas-services', fastify: '5.x' },
)

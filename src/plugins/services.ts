import fp from 'fastify-plugin'
import type { ByteBudget } from '../budget.ts'
import type { FastifyInstance } from 'fastify'
import type { AccessPolicy } from '../http/auth.ts'
import type { Metrics } from '../metrics.ts'
import type { PrefetchStats } from '../render/prefetcher.ts'
import type { BinaryCache } from '../services/binary-cache.ts'
import type { StoreStack } from '../stores/compose.ts'

/** How routes answer: cache lifetimes, prefetch window, NAR compression. */
export interface HttpSettings {
  narinfoMaxAge: number
  notFoundMaxAge: number
  windowBytes: number
  maxRequests: number
  compressNars: boolean
  /** Bounds the windows of all NAR responses together. */
  renderBudget: ByteBudget
}

export interface ServicesOptions {
  cache: BinaryCache
  stack: StoreStack
  metrics: Metrics
  prefetchStats: PrefetchStats
  access: AccessPolicy
  settings: HttpSettings
}

declare module 'fastify' {
  interface FastifyInstance {
    cache: BinaryCache
    stores: StoreStack
    metrics: Metrics
    prefetchStats: PrefetchStats
    access: AccessPolicy
    settings: HttpSettings
  }
}

/** The shared services every route uses, as decorators; the store stack closes with the app. */
export default fp(
  async function services(fastify: FastifyInstance, options: ServicesOptions) {
    fastify.decorate('cache', options.cache)
    fastify.decorate('stores', options.stack)
    fastify.decorate('metrics', options.metrics)
    fastify.decorate('prefetchStats', options.prefetchStats)
    fastify.decorate('access', options.access)
    fastify.decorate('settings', options.settings)
    fastify.addHook('onClose', async () => options.stack.close())
  },
  { name: 'nixcas-services', fastify: '5.x' },
)

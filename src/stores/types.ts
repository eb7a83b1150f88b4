import type { Logger } from 'pino'
import { resolve } from 'node:path'
import { CacheStore } from './cache.ts'
import { FsStore } from './fs.ts'
import { GcsStore } from './gcs.ts'
import { LruStore } from './lru.ts'
import { MemoryStore } from './memory.ts'
import { PriorityStore } from './priority.ts'
import { RaceStore } from './race.ts'
import { RetryStore } from './retry.ts'
import { S3Store } from './s3.ts'
import type { ObjectStore } from './store.ts'

export type OptionKind = 'string' | 'integer' | 'size' | 'boolean' | 'store' | 'stores'

export interface OptionSpec {
  kind: OptionKind
  required?: boolean
  min?: number
}

/** What a type's builder gets: its validated options and its members, already built. */
export interface BuildContext {
  name: string
  options: Record<string, string | number | boolean | undefined>
  store(field: string): ObjectStore
  stores(field: string): ObjectStore[]
  logger: Logger
  baseDir: string
  onRetry: (operation: string) => void
}

export interface StoreType {
  options: Record<string, OptionSpec>
  build(context: BuildContext): ObjectStore
}

const str = (context: BuildContext, field: string): string | undefined => context.options[field] as string | undefined
const num = (context: BuildContext, field: string): number | undefined => context.options[field] as number | undefined
const bool = (context: BuildContext, field: string): boolean | undefined => context.options[field] as boolean | undefined

/** Every `type:` a store instance may have, with its options. */
export const storeTypes: Record<string, StoreType> = {
  memory: {
    options: {},
    build: (context) => new MemoryStore(context.name),
  },
  fs: {
    options: { path: { kind: 'string', required: true }, fsync: { kind: 'boolean' } },
    build: (context) => new FsStore(context.name, { path: resolve(context.baseDir, str(context, 'path') ?? ''), fsync: bool(context, 'fsync') }),
  },
  s3: {
    options: {
      bucket: { kind: 'string', required: true },
      prefix: { kind: 'string' },
      region: { kind: 'string' },
      endpoint: { kind: 'string' },
      forcePathStyle: { kind: 'boolean' },
      accessKeyId: { kind: 'string' },
      secretAccessKey: { kind: 'string' },
      sdkAttempts: { kind: 'integer', min: 1 },
      partSize: { kind: 'size', min: 5 * 1024 * 1024 },
      connectTimeout: { kind: 'integer', min: 1 },
      idleTimeout: { kind: 'integer', min: 1 },
    },
    build: (context) =>
      new S3Store(context.name, {
        bucket: str(context, 'bucket') ?? '',
        prefix: str(context, 'prefix'),
        region: str(context, 'region'),
        endpoint: str(context, 'endpoint'),
        forcePathStyle: bool(context, 'forcePathStyle'),
        accessKeyId: str(context, 'accessKeyId'),
        secretAccessKey: str(context, 'secretAccessKey'),
        sdkAttempts: num(context, 'sdkAttempts'),
        partSize: num(context, 'partSize'),
        connectTimeout: num(context, 'connectTimeout'),
        idleTimeout: num(context, 'idleTimeout'),
      }),
  },
  gcs: {
    options: {
      bucket: { kind: 'string', required: true },
      prefix: { kind: 'string' },
      project: { kind: 'string' },
      apiEndpoint: { kind: 'string' },
      keyFilename: { kind: 'string' },
    },
    build: (context) =>
      new GcsStore(context.name, {
        bucket: str(context, 'bucket') ?? '',
        prefix: str(context, 'prefix'),
        project: str(context, 'project'),
        apiEndpoint: str(context, 'apiEndpoint'),
        keyFilename: str(context, 'keyFilename'),
      }),
  },
  retry: {
    options: {
      store: { kind: 'store', required: true },
      attempts: { kind: 'integer', min: 1 },
      baseDelay: { kind: 'integer', min: 0 },
      maxDelay: { kind: 'integer', min: 0 },
    },
    build: (context) =>
      new RetryStore(context.name, context.store('store'), context.logger, {
        attempts: num(context, 'attempts'),
        baseDelay: num(context, 'baseDelay'),
        maxDelay: num(context, 'maxDelay'),
        onRetry: context.onRetry,
      }),
  },
  cache: {
    options: { near: { kind: 'store', required: true }, far: { kind: 'store', required: true }, writeBackLimit: { kind: 'size', min: 0 } },
    build: (context) =>
      new CacheStore(context.name, context.store('near'), context.store('far'), context.logger, { writeBackLimit: num(context, 'writeBackLimit') }),
  },
  lru: {
    options: { store: { kind: 'store', required: true }, maxBytes: { kind: 'size', required: true, min: 1 }, maxEntrySize: { kind: 'size', min: 1 } },
    build: (context) =>
      new LruStore(context.name, context.store('store'), { maxBytes: num(context, 'maxBytes') ?? 0, maxEntrySize: num(context, 'maxEntrySize') }),
  },
  priority: {
    options: { stores: { kind: 'stores', required: true } },
    build: (context) => new PriorityStore(context.name, context.stores('stores')),
  },
  race: {
    options: { stores: { kind: 'stores', required: true } },
    build: (context) => new RaceStore(context.name, context.stores('stores')),
  },
}

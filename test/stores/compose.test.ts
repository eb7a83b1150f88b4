import { randomBytes } from 'node:crypto'
import t from 'tap'
import { composeStores, type StoreConfig } from '../../src/stores/compose.ts'
import { startFaultyProxy } from '../helpers/faulty-proxy.ts'
import { captureLogger, silentLogger } from '../helpers/log.ts'
import { startS3 } from '../helpers/s3.ts'
import { tempDir } from '../helpers/trees.ts'

const compose = (config: StoreConfig, baseDir?: string): ReturnType<typeof composeStores> => composeStores(config, { logger: silentLogger, baseDir })

t.test('the design example composes: disk cache in front of a retried bucket', async (t) => {
  const server = await startS3(t)
  const dir = await tempDir(t)
  const stack = compose({
    stores: {
      disk: { type: 'fs', path: 'cache' },
      bucket: { type: 's3', ...server.options, prefix: 'nixcas/' },
      remote: { type: 'retry', store: 'bucket', attempts: 5 },
      main: { type: 'cache', near: 'disk', far: 'remote' },
    },
    root: 'main',
  }, dir)
  t.teardown(() => stack.close())
  t.equal(stack.root.name, 'main')
  t.same([...stack.instances.keys()], ['disk', 'bucket', 'remote', 'main'], 'members are built before their users')
  t.same(stack.describe(), [
    'disk: fs {path=cache}',
    `bucket: s3 {bucket=nixcas-test, endpoint=${server.endpoint}, region=us-east-1, forcePathStyle=true, accessKeyId=S3RVER, prefix=nixcas/}`,
    'remote: retry {attempts=5, store=bucket}',
    'main (root): cache {near=disk, far=remote}',
  ], 'the description hides secrets')
  const bytes = randomBytes(1000)
  await stack.root.put('chunks/ab/abc', bytes)
  t.ok((await stack.instances.get('bucket')?.get('chunks/ab/abc'))?.equals(bytes), 'reached the bucket')
  t.ok((await stack.instances.get('disk')?.get('chunks/ab/abc'))?.equals(bytes), 'and the disk, relative to the base directory')
})

t.test('inline definitions and URLs stand where a name is expected', async (t) => {
  const dir = await tempDir(t)
  const stack = compose({
    stores: {
      hot: { type: 'lru', maxBytes: '64MiB', store: { type: 'priority', stores: ['memory://a', { type: 'fs', path: dir }] } },
    },
    root: 'hot',
  })
  t.same([...stack.instances.keys()].sort(), ['hot', 'hot.store', 'hot.store.stores[1]', 'memory://a'].sort())
  await stack.root.put('k', Buffer.from('v'))
  t.equal((await stack.instances.get('memory://a')?.get('k'))?.toString(), 'v', 'priority writes to its first member')
  t.same(compose({ stores: {}, root: { type: 'memory' } }).root.name, 'root.root', 'even the root may be inline')
})

t.test('configuration errors name the instance and the field', async (t) => {
  const cases: [string, StoreConfig, RegExp][] = [
    ['unknown type', { stores: { a: { type: 'ftp' } }, root: 'a' }, /store "a", field "type": unknown type "ftp"/],
    ['missing type', { stores: { a: {} as never }, root: 'a' }, /store "a", field "type": is missing/],
    ['missing reference', { stores: { a: { type: 'retry', store: 'b' } }, root: 'a' }, /store "a", field "store": no store named "b"/],
    ['missing root', { stores: { a: { type: 'memory' } }, root: 'b' }, /store "root", field "root": no store named "b"/],
    ['cycle', { stores: { a: { type: 'retry', store: 'b' }, b: { type: 'cache', near: 'c', far: 'a' }, c: { type: 'memory' } }, root: 'a' }, /store "a": is part of a cycle: a → b → a/],
    ['self cycle', { stores: { a: { type: 'priority', stores: ['a'] } }, root: 'a' }, /cycle: a → a/],
    ['cycle off the root', { stores: { a: { type: 'memory' }, x: { type: 'retry', store: 'x' } }, root: 'a' }, /store "x": is part of a cycle/],
    ['bad number', { stores: { a: { type: 'retry', store: 'b', attempts: 0 }, b: { type: 'memory' } }, root: 'a' }, /store "a", field "attempts": expected an integer of at least 1, got 0/],
    ['not a number', { stores: { a: { type: 'retry', store: 'b', attempts: 'many' }, b: { type: 'memory' } }, root: 'a' }, /store "a", field "attempts": expected an integer/],
    ['bad size', { stores: { a: { type: 'lru', store: 'b', maxBytes: 'lots' }, b: { type: 'memory' } }, root: 'a' }, /store "a", field "maxBytes": expected a size/],
    ['bad boolean', { stores: { a: { type: 'fs', path: '/tmp/x', fsync: 'sometimes' } }, root: 'a' }, /store "a", field "fsync": expected true or false/],
    ['unknown option', { stores: { a: { type: 'fs', path: '/tmp/x', colour: 'red' } }, root: 'a' }, /store "a", field "colour": unknown option for type fs/],
    ['missing required', { stores: { a: { type: 's3' } }, root: 'a' }, /store "a", field "bucket": is required for type s3/],
    ['empty member list', { stores: { a: { type: 'race', stores: [] } }, root: 'a' }, /store "a", field "stores": expected a non-empty list/],
    ['bad URL', { stores: { a: { type: 'retry', store: 'ftp://x' } }, root: 'a' }, /store "a", field "store": store URL "ftp:\/\/x": unknown scheme "ftp"/],
    ['bad member', { stores: { a: { type: 'retry', store: 42 } }, root: 'a' }, /store "a", field "store": expected a store name, a URL or an inline definition/],
    ['bad inline', { stores: { a: { type: 'retry', store: { type: 'nope' } } }, root: 'a' }, /store "a.store", field "type": unknown type "nope"/],
  ]
  for (const [label, config, message] of cases) t.throws(() => compose(config), { code: 'BAD_CONFIG', message }, label)
})

t.test('instance names appear in log lines', async (t) => {
  const server = await startS3(t)
  const proxy = await startFaultyProxy(t, server.endpoint, { fail: 0.5 })
  const { logger, lines } = captureLogger()
  const stack = composeStores({
    stores: {
      bucket: { type: 's3', ...server.options, endpoint: proxy.endpoint },
      remote: { type: 'retry', store: 'bucket', attempts: 30, baseDelay: 1, maxDelay: 2 },
    },
    root: 'remote',
  }, { logger })
  t.teardown(() => stack.close())
  for (let index = 0; index < 10; index++) await stack.root.put(`k${index}`, Buffer.from('v'))
  const retries = lines().filter((line) => line.msg === 'store retry')
  t.ok(retries.length > 0)
  t.ok(retries.every((line) => line.store === 'remote' && line.inner === 'bucket'))
})

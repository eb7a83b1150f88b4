import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { CacheStore } from '../../src/stores/cache.ts'
import { FsStore } from '../../src/stores/fs.ts'
import { MemoryStore } from '../../src/stores/memory.ts'
import { S3Store } from '../../src/stores/s3.ts'
import { startFaultyProxy } from '../helpers/faulty-proxy.ts'
import { captureLogger, silentLogger } from '../helpers/log.ts'
import { startS3 } from '../helpers/s3.ts'
import { CountingStore } from '../helpers/stores.ts'
import { collect } from '../helpers/streams.ts'
import { tempDir } from '../helpers/trees.ts'
import { conformance } from './conformance.ts'

t.test('conformance', async (t) =>
  conformance(t, async (t) => new CacheStore('cache', new FsStore('near', { path: await tempDir(t) }), new MemoryStore('far'), silentLogger)),
)

t.test('reads fill near; later reads do not touch far', async (t) => {
  const near = new MemoryStore('near')
  const far = new CountingStore(new MemoryStore('far'))
  const store = new CacheStore('cache', near, far, silentLogger)
  await far.put('chunks/aa/one', Buffer.from('one'))
  await far.put('chunks/aa/two', Buffer.from('two'))
  t.equal((await store.get('chunks/aa/one'))?.toString(), 'one')
  t.equal((await collect((await store.stream('chunks/aa/two')) ?? [])).toString(), 'two')
  t.equal((await near.get('chunks/aa/one'))?.toString(), 'one', 'get wrote back')
  t.equal((await near.get('chunks/aa/two'))?.toString(), 'two', 'stream wrote back')
  const before = { ...far.counts }
  await store.get('chunks/aa/one')
  await store.stream('chunks/aa/two')
  await store.head('chunks/aa/one')
  t.same(far.counts, before, 'far was not asked again')
  await store.put('chunks/bb/three', Buffer.from('three'))
  t.equal((await near.get('chunks/bb/three'))?.toString(), 'three', 'writes reach near')
  t.equal((await far.inner.get('chunks/bb/three'))?.toString(), 'three', 'and far')
})

t.test('serves from near while far is down; a failing near never fails a read', async (t) => {
  const server = await startS3(t)
  const proxy = await startFaultyProxy(t, server.endpoint)
  const far = new S3Store('bucket', { ...server.options, endpoint: proxy.endpoint })
  t.teardown(() => far.close())
  const near = new FsStore('disk', { path: await tempDir(t) })
  const { logger, lines } = captureLogger()
  const store = new CacheStore('main', near, far, logger)
  await store.put('chunks/cc/cached', Buffer.from('cached'))
  await far.put('chunks/cc/uncached', Buffer.from('uncached'))

  proxy.faults.down = true
  t.equal((await store.get('chunks/cc/cached'))?.toString(), 'cached', 'near answers')
  t.equal(await store.head('chunks/cc/cached'), 6)
  await t.rejects(store.get('chunks/cc/uncached'), { code: 'STORE_UNAVAILABLE', store: 'bucket' }, 'what only far has fails, transiently')

  proxy.faults.down = false
  // A near store rooted under a regular file can neither read nor write.
  const notADirectory = join(await tempDir(t), 'file')
  await writeFile(notADirectory, 'x')
  const broken = new CacheStore('main', new FsStore('broken', { path: join(notADirectory, 'store') }), far, logger)
  t.equal((await broken.get('chunks/cc/uncached'))?.toString(), 'uncached', 'read succeeds despite the near store failing')
  t.ok(lines().some((line) => line.msg === 'cache near store failed' && line.store === 'main' && line.near === 'broken'), 'and the failure is logged by name')
})

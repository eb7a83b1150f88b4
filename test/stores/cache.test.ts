import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { CacheStore } from '../../src/stores/cache.ts'
import { FsStore } from '../../src/stores/fs.ts'
import { LruStore } from '../../src/stores/lru.ts'
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

/** A check as Cas makes one: these bytes, exactly. */
const intact = (expected: Uint8Array) => (bytes: Uint8Array): boolean => Buffer.compare(bytes, expected) === 0

/** Flips one byte of an fs store's object in place, as a failing disk would. */
async function flipByte(root: string, key: string, at: number): Promise<void> {
  const path = join(root, key)
  const bytes = await readFile(path)
  bytes[at] = (bytes[at] as number) ^ 0xff
  await writeFile(path, bytes)
}

t.test('a near copy failing the read check is dropped, served from far, and rewritten', async (t) => {
  const dir = await tempDir(t)
  const near = new FsStore('disk', { path: dir })
  const far = new CountingStore(new MemoryStore('bucket'), 'bucket')
  const { logger, lines } = captureLogger()
  const store = new CacheStore('main', near, far, logger)
  const good = Buffer.from('the contents of a chunk')
  await store.put('chunks/dd/whole', good)
  await flipByte(dir, 'chunks/dd/whole', 3)
  t.notSame(await near.get('chunks/dd/whole'), good, 'near is corrupt')

  t.same(await store.get('chunks/dd/whole', { verify: intact(good) }), good, 'the read answers far’s bytes')
  t.same(await near.get('chunks/dd/whole'), good, 'near is repaired')
  t.ok(lines().some((line) => line.level === 50 && line.store === 'main' && line.near === 'disk' && line.key === 'chunks/dd/whole'), 'logged at error level, by name')
  const before = far.counts.get
  t.same(await store.get('chunks/dd/whole', { verify: intact(good) }), good)
  t.equal(far.counts.get, before, 'the repaired copy serves the next read')

  await flipByte(dir, 'chunks/dd/whole', 0)
  t.same(await collect((await store.stream('chunks/dd/whole', { verify: intact(good) })) ?? []), good, 'a checked stream heals the same way')
  t.same(await near.get('chunks/dd/whole'), good)

  await flipByte(dir, 'chunks/dd/whole', 10)
  const range = { offset: 4, length: 8 }
  t.same(await store.get('chunks/dd/whole', { range, verify: intact(good.subarray(4, 12)) }), good.subarray(4, 12), 'a checked range is served from far')
  t.equal(await near.head('chunks/dd/whole'), undefined, 'and the corrupt near copy is gone')

  t.same(await store.get('chunks/dd/whole'), good, 'a whole read fills near again')
  await flipByte(dir, 'chunks/dd/whole', 1)
  t.notSame(await store.get('chunks/dd/whole'), good, 'without a check, near answers as it is')
})

t.test('far bytes failing the check are never written into near', async (t) => {
  const dir = await tempDir(t)
  const near = new FsStore('disk', { path: dir })
  const far = new MemoryStore('bucket')
  const { logger, lines } = captureLogger()
  const store = new CacheStore('main', near, far, logger)
  const good = Buffer.from('what the digest promises')
  await far.put('chunks/ee/bad', Buffer.from('what the bucket now holds'))

  await t.rejects(store.get('chunks/ee/bad', { verify: intact(good) }), { code: 'CORRUPT_OBJECT', message: /"bucket"/ }, 'get fails naming far')
  await t.rejects(async () => collect((await store.stream('chunks/ee/bad', { verify: intact(good) })) ?? []), { code: 'CORRUPT_OBJECT' }, 'so does a checked stream')
  t.equal(await near.head('chunks/ee/bad'), undefined, 'near holds nothing')
  t.ok(lines().some((line) => line.level === 50 && line.store === 'main' && line.far === 'bucket'), 'logged at error level, by name')

  // Both sides corrupt: near's copy goes, far's is refused, nothing is kept.
  await near.put('chunks/ee/bad', Buffer.from('a third version'))
  await t.rejects(store.get('chunks/ee/bad', { verify: intact(good) }), { code: 'CORRUPT_OBJECT' })
  t.equal(await near.head('chunks/ee/bad'), undefined)

  await far.put('chunks/ee/bad', good)
  t.same(await store.get('chunks/ee/bad', { verify: intact(good) }), good, 'once far is good again, the read heals')
  t.same(await near.get('chunks/ee/bad'), good)
})

t.test('an lru above a cache passes the check down and never keeps what fails it', async (t) => {
  const dir = await tempDir(t)
  const near = new FsStore('disk', { path: dir })
  const far = new MemoryStore('bucket')
  const store = new LruStore('memory', new CacheStore('main', near, far, silentLogger), { maxBytes: 1024 * 1024 })
  const good = Buffer.from('cached twice over')
  await far.put('chunks/ff/one', good)
  await near.put('chunks/ff/one', Buffer.from('cached twice ov3r'))
  t.same(await store.get('chunks/ff/one', { verify: intact(good) }), good, 'the lru asked its cache with the check')
  t.same(await near.get('chunks/ff/one'), good, 'which healed near')

  const lru = new LruStore('memory', far, { maxBytes: 1024 * 1024 })
  await far.put('chunks/ff/two', Buffer.from('bad'))
  t.same(await lru.get('chunks/ff/two'), Buffer.from('bad'), 'read and cached without a check')
  await far.put('chunks/ff/two', good)
  t.same(await lru.get('chunks/ff/two', { verify: intact(good) }), good, 'a checked read drops the cached copy that fails')
  await far.put('chunks/ff/three', Buffer.from('bad'))
  await t.rejects(lru.get('chunks/ff/three', { verify: intact(good) }), { code: 'CORRUPT_OBJECT' })
  await far.put('chunks/ff/three', good)
  t.same(await lru.get('chunks/ff/three', { verify: intact(good) }), good, 'failing bytes were not cached')
})

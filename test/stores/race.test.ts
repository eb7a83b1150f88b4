import t from 'tap'
import { MemoryStore } from '../../src/stores/memory.ts'
import { RaceStore } from '../../src/stores/race.ts'
import { S3Store } from '../../src/stores/s3.ts'
import { startFaultyProxy } from '../helpers/faulty-proxy.ts'
import { startS3 } from '../helpers/s3.ts'
import { CountingStore } from '../helpers/stores.ts'
import { collect } from '../helpers/streams.ts'
import { conformance } from './conformance.ts'

t.test('conformance', async (t) => conformance(t, async () => new RaceStore('race', [new MemoryStore('a'), new MemoryStore('b')])))

t.test('returns while one member stalls, and cancels it', async (t) => {
  const server = await startS3(t)
  const direct = new S3Store('direct', server.options)
  t.teardown(() => direct.close())
  await direct.put('k', Buffer.from('from s3'))
  const proxy = await startFaultyProxy(t, server.endpoint, { stall: 1 })
  const stalled = new S3Store('stalled', { ...server.options, endpoint: proxy.endpoint })
  t.teardown(() => stalled.close())
  // The replica answers after a moment, so the stalled member surely got the request.
  const replica = new CountingStore(new MemoryStore('replica'))
  replica.delay = 300
  await replica.put('k', Buffer.from('from replica'))

  const store = new RaceStore('race', [stalled, replica])
  t.same(await store.get('k'), Buffer.from('from replica'), 'the live member answered (the stalled one never will)')
  t.equal((await collect((await store.stream('k')) ?? [])).toString(), 'from replica')
  t.equal(await store.head('k'), 12)
  t.ok((proxy.counts.stall ?? 0) >= 1, `the stalled member was asked (${proxy.counts.stall} times) and never answered`)

  const both = new RaceStore('race', [stalled, direct])
  t.equal((await both.get('k'))?.toString(), 'from s3', 'a stalled S3 path loses to a live one')
})

t.test('absent only when every member says so; errors otherwise', async (t) => {
  const a = new CountingStore(new MemoryStore('a'))
  const b = new CountingStore(new MemoryStore('b'))
  a.delay = 30
  await a.put('k', Buffer.from('slow'))
  await b.put('k', Buffer.from('fast'))
  const store = new RaceStore('race', [a, b])
  t.equal((await store.get('k'))?.toString(), 'fast', 'the first present answer wins')
  t.equal(await store.get('missing'), undefined)
  const broken = new S3Store('broken', { bucket: 'b', endpoint: 'http://127.0.0.1:9', forcePathStyle: true, accessKeyId: 'x', secretAccessKey: 'y' })
  t.teardown(() => broken.close())
  await t.rejects(new RaceStore('race', [broken, b]).get('missing'), { code: 'STORE_UNAVAILABLE', store: 'broken' })
  await store.put('w', Buffer.from('both'))
  t.equal((await a.inner.get('w'))?.toString(), 'both', 'writes reach every member')
  t.equal((await b.inner.get('w'))?.toString(), 'both')
})

import t from 'tap'
import { LruStore } from '../../src/stores/lru.ts'
import { MemoryStore } from '../../src/stores/memory.ts'
import { CountingStore } from '../helpers/stores.ts'
import { conformance } from './conformance.ts'

t.test('conformance', async (t) => conformance(t, async () => new LruStore('lru', new MemoryStore('memory'), { maxBytes: 64 * 1024 * 1024 })))

t.test('concurrent reads of one key share one fetch', async (t) => {
  const inner = new CountingStore(new MemoryStore('memory'))
  inner.delay = 20
  await inner.put('k', Buffer.from('value'))
  const store = new LruStore('lru', inner, { maxBytes: 1000 })
  const values = await Promise.all(Array.from({ length: 10 }, () => store.get('k')))
  t.ok(values.every((value) => value?.toString() === 'value'))
  t.equal(inner.counts.get, 1, 'one fetch for ten readers')
  await store.get('k')
  t.equal(inner.counts.get, 1, 'then served from memory')
})

t.test('bounded by bytes; large entries pass through', async (t) => {
  const inner = new CountingStore(new MemoryStore('memory'))
  const store = new LruStore('lru', inner, { maxBytes: 1000, maxEntrySize: 300 })
  for (let index = 0; index < 20; index++) await inner.put(`k${index}`, Buffer.alloc(100, index))
  await inner.put('big', Buffer.alloc(400))
  for (let index = 0; index < 20; index++) await store.get(`k${index}`)
  const before = inner.counts.get
  for (let index = 10; index < 20; index++) await store.get(`k${index}`)
  t.equal(inner.counts.get, before, 'the 10 most recent (1000 bytes) stayed')
  await store.get('k0')
  t.equal(inner.counts.get, before + 1, 'the oldest was evicted')
  await store.get('big')
  await store.get('big')
  t.equal(inner.counts.get, before + 3, 'an entry over maxEntrySize is never cached')
  t.equal((await store.get('k15', { range: { offset: 10, length: 5 } }))?.length, 5, 'ranges are cut from cached objects')
})

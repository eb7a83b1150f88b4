import t from 'tap'
import { MemoryStore } from '../../src/stores/memory.ts'
import { PriorityStore } from '../../src/stores/priority.ts'
import { S3Store } from '../../src/stores/s3.ts'
import { CountingStore } from '../helpers/stores.ts'
import { conformance } from './conformance.ts'

t.test('conformance', async (t) => conformance(t, async () => new PriorityStore('priority', [new MemoryStore('a'), new MemoryStore('b')])))

t.test('asks in order, first present answer wins', async (t) => {
  const first = new CountingStore(new MemoryStore('first'))
  const second = new CountingStore(new MemoryStore('second'))
  const store = new PriorityStore('priority', [first, second])
  await second.put('only-second', Buffer.from('2'))
  await first.put('both', Buffer.from('1'))
  await second.put('both', Buffer.from('2'))
  t.equal((await store.get('both'))?.toString(), '1')
  t.equal(second.counts.get, 0, 'second not asked when first has it')
  t.equal((await store.get('only-second'))?.toString(), '2')
  t.equal(await store.get('nowhere'), undefined)
  await store.put('new', Buffer.from('n'))
  t.equal(await second.inner.get('new'), undefined, 'writes go to the first member')
})

t.test('a failed member is skipped, but absent is only said when all agree', async (t) => {
  const broken = new S3Store('broken', { bucket: 'b', endpoint: 'http://127.0.0.1:9', forcePathStyle: true, accessKeyId: 'x', secretAccessKey: 'y' })
  t.teardown(() => broken.close())
  const good = new MemoryStore('good')
  await good.put('k', Buffer.from('v'))
  const store = new PriorityStore('priority', [broken, good])
  t.equal((await store.get('k'))?.toString(), 'v')
  await t.rejects(store.get('missing'), { code: 'STORE_UNAVAILABLE', store: 'broken' }, 'cannot say absent while a member failed')
})

t.test("a listing is the members' union, merged in key order, each key once from the first member that has it", async (t) => {
  const first = new MemoryStore('first')
  const second = new MemoryStore('second')
  for (const key of ['u/a', 'u/c', 'u/d/x']) await first.put(key, Buffer.from('first'))
  for (const key of ['u/b', 'u/c', 'u/d-e', 'u/e']) await second.put(key, Buffer.from('second two'))
  const listed: [string, number][] = []
  for await (const object of new PriorityStore('priority', [first, second]).list('u/')) listed.push([object.key, object.size])
  t.same(listed, [['u/a', 5], ['u/b', 10], ['u/c', 5], ['u/d-e', 10], ['u/d/x', 5], ['u/e', 10]])
})

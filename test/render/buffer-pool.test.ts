import t from 'tap'
import { LRUCache } from 'lru-cache'
import { upToEntries } from '../../src/lru-entries.ts'
import { BufferPool } from '../../src/render/buffer-pool.ts'

t.test('a pool hands given buffers out again, up to its free bytes, and lets them go once unused', async (t) => {
  const pool = new BufferPool(512 * 1024, 20)
  const a = pool.take(100_000)
  t.equal(a.length, 100_000)
  t.equal(a.buffer.byteLength, 128 * 1024, 'capacity rounded up to a power of two')
  pool.give(a.subarray(10, 20))
  t.equal(pool.freeSize, 128 * 1024, 'a view gives back its whole buffer')
  pool.give(a)
  t.equal(pool.freeSize, 128 * 1024, 'given twice counts once')
  const b = pool.take(128 * 1024)
  t.equal(b.buffer, a.buffer, 'reused')
  t.equal(pool.freeSize, 0)
  const many = Array.from({ length: 6 }, () => pool.take(128 * 1024))
  for (const buffer of many) pool.give(buffer)
  t.equal(pool.freeSize, 512 * 1024, 'no more than its free bytes wait')
  pool.give(Buffer.alloc(128 * 1024))
  t.equal(pool.freeSize, 512 * 1024, 'a buffer it did not make is ignored')
  const small = pool.take(2_000)
  t.equal(small.buffer.byteLength < 64 * 1024, true, 'a small buffer is not rounded up to 64 KiB')
  pool.give(small)
  t.equal(pool.freeSize, 512 * 1024, 'nor pooled')
  const before = pool.freeSize
  const served = pool.take(40_000)
  t.equal(served.buffer.byteLength, 128 * 1024, 'none of 64 KiB free: a free 128 KiB one serves')
  t.equal(pool.freeSize, before - 128 * 1024)
  pool.give(served)
  // Nothing taken from now on: within a couple of idle periods the free buffers go.
  for (const deadline = Date.now() + 10_000; pool.freeSize > 0 && Date.now() < deadline; ) await new Promise((resolve) => setTimeout(resolve, 10))
  t.equal(pool.freeSize, 0, 'an unused pool holds nothing')
})

t.test('upToEntries bounds a cache by entries without allocating for them up front', async (t) => {
  const cache = new LRUCache<string, number>(upToEntries(3))
  for (let index = 0; index < 10; index++) cache.set(`k${index}`, index)
  t.equal(cache.size, 3)
  t.same([...cache.keys()], ['k9', 'k8', 'k7'], 'the most recent are kept')
})

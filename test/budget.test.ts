import t from 'tap'
import { ByteBudget } from '../src/budget.ts'
import { prefetch, type FetchJob } from '../src/render/prefetcher.ts'
import { collect } from './helpers/streams.ts'

t.test('a shared budget bounds many prefetchers together', async (t) => {
  const budget = new ByteBudget(64 * 1024)
  const jobs = (): FetchJob[] =>
    Array.from({ length: 50 }, (_, index) => ({
      size: 8 * 1024,
      fetch: () => new Promise<Uint8Array>((resolve) => setTimeout(() => resolve(Buffer.alloc(8 * 1024, index)), 1 + (index % 3))),
    }))
  // Ten readers, each allowed a 1 MiB window on its own: together they stay within the budget.
  const results = await Promise.all(Array.from({ length: 10 }, () => collect(prefetch(jobs(), { windowBytes: 1024 * 1024, maxRequests: 16, budget }))))
  t.ok(results.every((bytes) => bytes.length === 50 * 8 * 1024), 'every reader got everything, in order')
  t.ok(budget.peak <= 64 * 1024 + 10 * 8 * 1024, `peak ${budget.peak}: the budget plus at most one piece per reader`)
  t.equal(budget.inUse, 0, 'all released')
})

t.test('a reader holding nothing may always take one piece', async (t) => {
  const budget = new ByteBudget(10)
  t.ok(budget.tryAcquire(100, true))
  t.notOk(budget.tryAcquire(1, false))
  budget.release(100)
  t.ok(budget.tryAcquire(10, false))
})

import t from 'tap'
import { ApproximateSet, BloomFilter, hashNumber, hashString } from '../../src/lifecycle/bloom.ts'

t.test('an approximate set never forgets a member, exact or filtered, and stays within its false-positive rate', async (t) => {
  const set = new ApproximateSet(hashString, { expected: 20_000, falsePositiveRate: 0.01, exactLimit: 1000 })
  const members = Array.from({ length: 50_000 }, (_, index) => `chunks/${(index % 256).toString(16).padStart(2, '0')}/member-${index}`)
  for (const [index, key] of members.entries()) {
    if (!set.add(key) && index < 1000) t.fail(`${key} was new`)
    if (index === 999) t.equal(set.stats.approximate, false, 'exact up to its limit')
  }
  t.equal(set.stats.approximate, true, 'a filter beyond it')
  t.ok(members.every((key) => set.has(key)), 'every member tests as a member (also those taken before the filter, and beyond its expected count)')
  t.notOk(set.add(members[123] as string), 'adding a member again says so')
  let falsePositives = 0
  const probes = 100_000
  for (let index = 0; index < probes; index++) if (set.has(`chunks/ab/stranger-${index}`)) falsePositives++
  // Expected at most 1 % (1000); the chance of twice that is negligible.
  t.ok(falsePositives < 2000, `${falsePositives} false positives of ${probes} probes`)
  t.ok(set.stats.filterBytes < 200_000, `${set.stats.filterBytes} bytes of filters for 50 000 members past an expected 20 000`)
})

t.test('a filter of one expected member at a high rate errs a lot, and says a key is new only when it is', async (t) => {
  const filter = new BloomFilter(1, 0.5)
  filter.add(hashNumber(1, 7), hashNumber(1, 9))
  t.ok(filter.has(hashNumber(1, 7), hashNumber(1, 9)))
  t.notOk(filter.add(hashNumber(1, 7), hashNumber(1, 9)), 'its own bits are set')
  const numbers = new ApproximateSet(hashNumber, { expected: 1, falsePositiveRate: 0.9, exactLimit: 0 })
  for (let value = 0; value < 1000; value++) numbers.add(value * 2 ** 32 + 17)
  t.ok(Array.from({ length: 1000 }, (_, value) => numbers.has(value * 2 ** 32 + 17)).every(Boolean), 'members above 2^32 are kept apart and found')
  t.throws(() => new ApproximateSet(hashString, { expected: 1, falsePositiveRate: 1, exactLimit: 0 }), RangeError)
})

import { randomBytes } from 'node:crypto'
import t from 'tap'
import { MemoryStore } from '../../src/stores/memory.ts'
import { RetryStore } from '../../src/stores/retry.ts'
import { S3Store } from '../../src/stores/s3.ts'
import { startFaultyProxy } from '../helpers/faulty-proxy.ts'
import { captureLogger, silentLogger, topLevelKeys } from '../helpers/log.ts'
import { startS3 } from '../helpers/s3.ts'
import { collect } from '../helpers/streams.ts'
import { conformance } from './conformance.ts'

t.test('conformance', async (t) => conformance(t, async () => new RetryStore('retry', new MemoryStore('memory'), silentLogger)))

const ATTEMPTS = 4

t.test('every read succeeds with identical bytes through a failing S3 server', async (t) => {
  const server = await startS3(t)
  const direct = new S3Store('direct', server.options)
  t.teardown(() => direct.close())
  const objects = new Map<string, Buffer>()
  for (let index = 0; index < 12; index++) {
    const bytes = randomBytes(index === 0 ? 0 : index % 3 === 0 ? 3 * 1024 * 1024 : 1000 + index * 5000)
    objects.set(`objects/${index}`, bytes)
    await direct.put(`objects/${index}`, bytes)
  }

  // Faults are dealt, not drawn: the same on every run, and never more in a row for one
  // request than the retry budget can absorb.
  const proxy = await startFaultyProxy(t, server.endpoint, { fail: 0.25, reset: 0.1, resetMidBody: 0.25, maxFaultsInARow: ATTEMPTS - 1 })
  const flaky = new S3Store('bucket', { ...server.options, endpoint: proxy.endpoint })
  t.teardown(() => flaky.close())
  const { logger, lines, text } = captureLogger()
  // Bound to the instance as compose.ts binds every instance's logger.
  const store = new RetryStore('remote', flaky, logger.child({ store: 'remote' }), { attempts: ATTEMPTS, baseDelay: 1, maxDelay: 5 })

  for (let round = 0; round < 3; round++) {
    for (const [key, bytes] of objects) {
      t.ok((await store.get(key))?.equals(bytes), `get ${key}`)
      const source = await store.stream(key)
      t.ok(source && (await collect(source)).equals(bytes), `stream ${key}`)
      t.equal(await store.head(key), bytes.length, `head ${key}`)
      const range = { offset: Math.floor(bytes.length / 3), length: Math.floor(bytes.length / 2) }
      t.ok((await store.get(key, { range }))?.equals(bytes.subarray(range.offset, range.offset + range.length)), `range of ${key}`)
    }
    t.equal(await store.get('objects/missing'), undefined, 'absent stays absent')
  }
  const { fail = 0, reset = 0, resetMidBody = 0 } = proxy.counts
  t.ok(fail > 0 && reset > 0 && resetMidBody > 0, `every kind of fault was injected: ${JSON.stringify(proxy.counts)}`)
  const retries = lines().filter((line) => line.msg === 'store retry')
  t.ok(retries.length >= fail + reset + resetMidBody, `each fault was retried (${retries.length} retries)`)
  t.ok(retries.every((line) => line.store === 'remote' && line.inner === 'bucket'), 'each retry names the instances')
  t.ok(retries.some((line) => line.attempt === ATTEMPTS), 'some requests needed every attempt')
  t.ok(retries.some((line) => line.operation === 'stream' && /aborted/.test(String(line.err))), 'bodies cut mid-way were resumed')
  const duplicated = text().filter((line) => new Set(topLevelKeys(line)).size !== topLevelKeys(line).length)
  t.same(duplicated, [], 'no retry line repeats a key')
})

t.test('a read cut more often than the attempts completes while each cut delivers bytes', async (t) => {
  const server = await startS3(t)
  const bytes = randomBytes(256 * 1024)
  const direct = new S3Store('direct', server.options)
  t.teardown(() => direct.close())
  await direct.put('big', bytes)
  // Every response is cut half-way, so the read needs about log2(size) resumes.
  const proxy = await startFaultyProxy(t, server.endpoint, { resetMidBody: 1 })
  const cut = new S3Store('bucket', { ...server.options, endpoint: proxy.endpoint })
  t.teardown(() => cut.close())
  const store = new RetryStore('remote', cut, silentLogger, { attempts: 3, baseDelay: 1, maxDelay: 2 })
  const source = await store.stream('big')
  t.ok(source && (await collect(source)).equals(bytes), 'identical bytes')
  t.ok((proxy.counts.resetMidBody ?? 0) > 3, `cut ${proxy.counts.resetMidBody} times, more than the 3 attempts`)
})

t.test('permanent errors and absent objects are not retried', async (t) => {
  const server = await startS3(t)
  const { logger, lines } = captureLogger()
  const wrongBucket = new S3Store('bucket', { ...server.options, bucket: 'does-not-exist' })
  t.teardown(() => wrongBucket.close())
  const store = new RetryStore('remote', wrongBucket, logger, { attempts: 5, baseDelay: 1 })
  await t.rejects(store.put('x', Buffer.from('x')), { code: 'STORE_FAILED' })
  t.equal(lines().filter((line) => line.msg === 'store retry').length, 0)
})

t.test('gives up after the last attempt with the transient error', async (t) => {
  const server = await startS3(t)
  const proxy = await startFaultyProxy(t, server.endpoint, { down: true })
  const down = new S3Store('bucket', { ...server.options, endpoint: proxy.endpoint })
  t.teardown(() => down.close())
  const store = new RetryStore('remote', down, silentLogger, { attempts: 3, baseDelay: 1 })
  await t.rejects(store.get('x'), { code: 'STORE_UNAVAILABLE', store: 'bucket' })
  t.equal(proxy.counts.fail, 3, 'three attempts')
})

t.test('a listing cut part-way resumes after its last key: every key once, in order', async (t) => {
  const server = await startS3(t)
  const direct = new S3Store('direct', server.options)
  t.teardown(() => direct.close())
  const keys = Array.from({ length: 2300 }, (_, index) => `listed/${String(index).padStart(5, '0')}`)
  for (let start = 0; start < keys.length; start += 50) await Promise.all(keys.slice(start, start + 50).map((key) => direct.put(key, Buffer.from('x'))))
  const proxy = await startFaultyProxy(t, server.endpoint, { fail: 0.3, maxFaultsInARow: ATTEMPTS - 1 })
  const flaky = new S3Store('bucket', { ...server.options, endpoint: proxy.endpoint })
  t.teardown(() => flaky.close())
  const store = new RetryStore('remote', flaky, silentLogger, { attempts: ATTEMPTS, baseDelay: 1, maxDelay: 5 })
  for (let round = 0; round < 3; round++) {
    const listed: string[] = []
    for await (const object of store.list('listed/')) listed.push(object.key)
    t.same(listed, keys, `round ${round}: all ${keys.length} keys, once each, in order`)
  }
  t.ok((proxy.counts.fail ?? 0) > 0, `pages failed and were asked again (${JSON.stringify(proxy.counts)})`)
})

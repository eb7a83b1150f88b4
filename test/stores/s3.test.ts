import { randomUUID } from 'node:crypto'
import t from 'tap'
import { RetryStore } from '../../src/stores/retry.ts'
import { S3Store } from '../../src/stores/s3.ts'
import { silentLogger } from '../helpers/log.ts'
import { startS3 } from '../helpers/s3.ts'
import { conformance } from './conformance.ts'

t.test('conformance against s3rver', async (t) => {
  const server = await startS3(t)
  // Each test its own prefix in the one bucket; small parts so the 20 MB object goes multipart.
  conformance(t, async (t) => {
    const store = new S3Store('bucket', { ...server.options, prefix: `${randomUUID()}/`, partSize: 5 * 1024 * 1024 })
    t.teardown(() => store.close())
    return store
  }, {
    skipAtomic: 's3rver rewrites an object file in place, so the test server itself is not atomic (S3 PUT is)',
    skipDeleteMany: 's3rver races on its own directory clean-up when objects of one directory are deleted at once (InternalError); tested below through retry',
    skipKeyOrder: 's3rver lists by walking its own directories, so `a/x` comes before `a-b` (S3 lists in UTF-8 byte order); nixcas keys never put a name beside a longer one it starts',
  })
})

t.test('deleteMany is one DeleteObjects request per 1000 keys, and retry absorbs s3rver\'s clean-up race', async (t) => {
  const server = await startS3(t)
  const inner = new S3Store('bucket', { ...server.options, prefix: `${randomUUID()}/` })
  const store = new RetryStore('retry', inner, silentLogger, { attempts: 10, baseDelay: 1, maxDelay: 5 })
  t.teardown(() => inner.close())
  const keys = Array.from({ length: 1005 }, (_, index) => `many/${String(index).padStart(4, '0')}`)
  await Promise.all(keys.slice(0, 40).map((key) => store.put(key, Buffer.from(key))))
  await store.put('kept/object', Buffer.from('x'))
  await store.deleteMany(keys)
  const left: string[] = []
  for await (const object of store.list('')) left.push(object.key)
  t.same(left, ['kept/object'])
})

t.test('an unreachable endpoint is a transient error naming the store', async (t) => {
  const store = new S3Store('nowhere', { bucket: 'b', endpoint: 'http://127.0.0.1:9', forcePathStyle: true, region: 'us-east-1', accessKeyId: 'x', secretAccessKey: 'y' })
  t.teardown(() => store.close())
  await t.rejects(store.get('some/key'), { code: 'STORE_UNAVAILABLE', transient: true, store: 'nowhere', message: /store "nowhere": get some\/key/ })
})

t.test('a missing bucket is a permanent error', async (t) => {
  const server = await startS3(t)
  const store = new S3Store('bucket', { ...server.options, bucket: 'no-such-bucket' })
  t.teardown(() => store.close())
  await t.rejects(store.put('x', Buffer.from('x')), { code: 'STORE_FAILED', transient: false })
})

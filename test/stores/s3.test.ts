import { randomUUID } from 'node:crypto'
import t from 'tap'
import { S3Store } from '../../src/stores/s3.ts'
import { startS3 } from '../helpers/s3.ts'
import { conformance } from './conformance.ts'

t.test('conformance against s3rver', async (t) => {
  const server = await startS3(t)
  // Each test its own prefix in the one bucket; small parts so the 20 MB object goes multipart.
  conformance(t, async (t) => {
    const store = new S3Store('bucket', { ...server.options, prefix: `${randomUUID()}/`, partSize: 5 * 1024 * 1024 })
    t.teardown(() => store.close())
    return store
  }, { skipAtomic: 's3rver rewrites an object file in place, so the test server itself is not atomic (S3 PUT is)' })
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

import t from 'tap'
import { build } from '../helpers/app.ts'

t.test('health says whether the store answers', async (t) => {
  const healthy = await build(t)
  const ok = await healthy.inject({ url: '/health' })
  t.equal(ok.statusCode, 200)
  t.match(ok.json(), { status: 'ok', store: 'memory://' })
  const broken = await build(t, { stores: { stores: {}, root: 's3://unreachable-bucket?endpoint=http://127.0.0.1:9&forcePathStyle=true&accessKeyId=x&secretAccessKey=y' } })
  const down = await broken.inject({ url: '/health' })
  t.equal(down.statusCode, 503)
  t.match(down.json(), { status: 'unavailable' })
})

t.test('unknown URLs are 404, errors are not cached', async (t) => {
  const app = await build(t)
  const missing = await app.inject({ url: '/no/such/thing' })
  t.equal(missing.statusCode, 404)
  const bad = await app.inject({ url: '/x.narinfo' })
  t.equal(bad.headers['cache-control'], 'no-store')
})

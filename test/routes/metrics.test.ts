import t from 'tap'
import { build } from '../helpers/app.ts'
import { narOf } from '../helpers/nar-samples.ts'
import { makeGoldenTrees, tempDir } from '../helpers/trees.ts'

t.test('Prometheus metrics', async (t) => {
  const trees = await makeGoldenTrees(await tempDir(t))
  const nar = await narOf(trees.mixed as string)
  const app = await build(t, { stores: { stores: { fast: { type: 'lru', store: 'memory://', maxBytes: '1MiB' } }, root: 'fast' } })
  await app.inject({ method: 'PUT', url: '/nar/x.nar', payload: nar.bytes })
  await app.inject({ url: `/nar/${nar.hash}.nar` })
  await app.inject({ url: '/nix-cache-info' })
  const response = await app.inject({ url: '/metrics' })
  t.equal(response.statusCode, 200)
  const text = response.body
  t.match(text, /nixcas_http_requests_total\{route="\/nix-cache-info",method="GET",status="200"\} 1/)
  t.match(text, /nixcas_http_requests_total\{route="\/nar\/:file",method="PUT",status="201"\} 1/)
  t.match(text, new RegExp(`nixcas_http_response_bytes_total\\{route="nar"\\} ${nar.bytes.length}`))
  t.match(text, new RegExp(`nixcas_ingest_bytes_total ${nar.bytes.length}`))
  t.match(text, /nixcas_store_requests_total\{store="fast",operation="put"\} \d+/)
  t.match(text, /nixcas_store_requests_total\{store="memory:\/\/",operation="put"\} \d+/, 'every instance is counted by name')
  t.match(text, /nixcas_store_requests_total\{store="fast",operation="get"\} \d+/)
  t.match(text, /nixcas_ingested_nars_total\{outcome="ok"\} 1/)
  t.match(text, /# TYPE nixcas_prefetch_buffered_bytes gauge\nnixcas_prefetch_buffered_bytes 0/)
  t.match(text, /nixcas_prefetch_requests_in_flight 0/)
})

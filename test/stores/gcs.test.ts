import { randomUUID } from 'node:crypto'
import t from 'tap'
import { GcsStore } from '../../src/stores/gcs.ts'
import { startGcs } from '../helpers/gcs.ts'
import { conformance } from './conformance.ts'

t.test('conformance against the Storage emulator', async (t) => {
  const server = await startGcs(t)
  conformance(t, async () => new GcsStore('bucket', { bucket: 'nixcas-test', prefix: `${randomUUID()}/`, project: server.project, apiEndpoint: server.apiEndpoint }))
})

t.test('an unreachable endpoint is a transient error naming the store', async (t) => {
  const store = new GcsStore('nowhere', { bucket: 'b', project: 'demo-test', apiEndpoint: 'http://127.0.0.1:9' })
  await t.rejects(store.head('some/key'), { code: 'STORE_UNAVAILABLE', transient: true, store: 'nowhere' })
})

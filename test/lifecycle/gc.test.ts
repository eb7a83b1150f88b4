import { randomUUID } from 'node:crypto'
import t from 'tap'
import { startGcs } from '../helpers/gcs.ts'
import { startS3 } from '../helpers/s3.ts'
import { tempDir } from '../helpers/trees.ts'
import { pinnedClosureSurvives } from './scenario.ts'

t.test('fs', async (t) => {
  await pinnedClosureSurvives(t, { stores: { disk: { type: 'fs', path: await tempDir(t), fsync: false } }, root: 'disk' })
})

t.test('s3 (s3rver), through retry', async (t) => {
  const server = await startS3(t)
  await pinnedClosureSurvives(t, {
    stores: {
      bucket: { type: 's3', ...server.options, prefix: `${randomUUID()}/` },
      // s3rver races on its own directory clean-up when neighbours are deleted at once; S3 does not.
      main: { type: 'retry', store: 'bucket', attempts: 10, baseDelay: 1, maxDelay: 10 },
    },
    root: 'main',
  }, { resolution: 1000 })
})

t.test('gcs (the Storage emulator)', async (t) => {
  const server = await startGcs(t)
  await pinnedClosureSurvives(t, { stores: { bucket: { type: 'gcs', bucket: 'nixcas-test', prefix: `${randomUUID()}/`, project: server.project, apiEndpoint: server.apiEndpoint } }, root: 'bucket' })
})

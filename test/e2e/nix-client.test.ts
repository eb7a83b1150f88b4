import { join } from 'node:path'
import t from 'tap'
import { buildClosure, type Closure } from '../helpers/closure.ts'
import { skipWithoutNix } from '../helpers/nix.ts'
import { makeKeys, nixClient, pullAndCheck, serve } from '../helpers/nix-client.ts'
import { startGcs } from '../helpers/gcs.ts'
import { startS3 } from '../helpers/s3.ts'
import { tempDir } from '../helpers/trees.ts'

t.test('the real Nix client pushes and pulls through nixcas', { skip: skipWithoutNix }, async (t) => {
  const dir = await tempDir(t)
  const keys = await makeKeys(dir)
  const storePath = join(dir, 'cache')
  const overrides = { stores: { stores: {}, root: `file://${storePath}` }, signingKeyFiles: [keys.secretFile] }
  const first = await serve(t, overrides)

  const pushed: Closure[] = []
  // The last push also uploads NAR listings, as `write-nar-listing` makes Nix do.
  for (const options of ['compression=xz', 'compression=zstd', 'compression=none&write-nar-listing=true']) {
    await t.test(`push with ${options}, pull with signatures required`, async (t) => {
      const closure = await buildClosure(dir)
      const output = await nixClient(dir, ['copy', '--to', `${first.url}?${options}`, closure.top])
      t.notMatch(output, /error/i)
      await pullAndCheck(t, dir, first.url, keys, closure)
      pushed.push(closure)
    })
  }

  await t.test('a restarted server on the same fs store serves what was pushed', async (t) => {
    await first.app.close()
    const second = await serve(t, overrides)
    for (const closure of pushed) await pullAndCheck(t, dir, second.url, keys, closure)
  })
})

t.test('the same round trip over S3 behind a local disk cache', { skip: skipWithoutNix }, async (t) => {
  const dir = await tempDir(t)
  const keys = await makeKeys(dir)
  const s3 = await startS3(t)
  const near = `file://${join(dir, 'near')}`
  const root = `s3://${s3.bucket}/e2e?endpoint=${encodeURIComponent(s3.endpoint)}&forcePathStyle=true&region=us-east-1&accessKeyId=S3RVER&secretAccessKey=S3RVER&retry=3&cache=${encodeURIComponent(near)}`
  const server = await serve(t, { stores: { stores: {}, root }, signingKeyFiles: [keys.secretFile] })
  const closure = await buildClosure(dir)
  await nixClient(dir, ['copy', '--to', server.url, closure.top])
  await pullAndCheck(t, dir, server.url, keys, closure)
  // A second server with an empty near store reads everything from the bucket.
  const cold = await serve(t, { stores: { stores: {}, root: root.replace(encodeURIComponent(near), encodeURIComponent(`file://${join(dir, 'near-2')}`)) }, signingKeyFiles: [keys.secretFile] })
  await pullAndCheck(t, dir, cold.url, keys, closure)
})

t.test('and over Google Cloud Storage (the emulator); a wrong key is refused', { skip: skipWithoutNix }, async (t) => {
  const dir = await tempDir(t)
  const keys = await makeKeys(dir)
  const gcs = await startGcs(t)
  const root = `gs://nixcas-e2e/cache?project=${gcs.project}&apiEndpoint=${encodeURIComponent(gcs.apiEndpoint)}&retry=3`
  const server = await serve(t, { stores: { stores: {}, root }, signingKeyFiles: [keys.secretFile] })
  const closure = await buildClosure(dir)
  await nixClient(dir, ['copy', '--to', `${server.url}?compression=zstd`, closure.top])
  await pullAndCheck(t, dir, server.url, keys, closure)
  const otherKeys = await makeKeys(await tempDir(t))
  await t.rejects(
    nixClient(dir, ['copy', '--from', server.url, '--to', join(dir, 'untrusting'), '--option', 'trusted-public-keys', otherKeys.publicKey, closure.top]),
    /lacks a valid signature/,
    'signatures are checked for real',
  )
})

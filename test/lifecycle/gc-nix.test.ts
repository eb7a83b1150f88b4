import t from 'tap'
import { Cas } from '../../src/cas/cas.ts'
import { collectGarbage } from '../../src/lifecycle/gc.ts'
import { Pins } from '../../src/lifecycle/pins.ts'
import { FsStore } from '../../src/stores/fs.ts'
import { buildClosure } from '../helpers/closure.ts'
import { skipWithoutNix } from '../helpers/nix.ts'
import { makeKeys, nixClient, pullAndCheck, serve } from '../helpers/nix-client.ts'
import { tempDir } from '../helpers/trees.ts'
import { deletedObjects } from './scenario.ts'

t.test('the real Nix client: push two closures, pin one, gc --retain 0s --grace 0s; the pinned one pulls back with signatures, the other is gone', { skip: skipWithoutNix }, async (t) => {
  const dir = await tempDir(t)
  const keys = await makeKeys(dir)
  const storePath = await tempDir(t)
  const { url } = await serve(t, { stores: { stores: {}, root: `file://${storePath}` }, signingKeyFiles: [keys.secretFile] })
  const pinned = await buildClosure(dir)
  const other = await buildClosure(dir)
  for (const closure of [pinned, other]) await nixClient(dir, ['copy', '--to', url, closure.top])

  const store = new FsStore('disk', { path: storePath, fsync: false })
  t.teardown(() => store.close())
  await new Pins(store, '/nix/store').add('release', [pinned.top])
  const report = await collectGarbage(new Cas(store), { retain: 0, grace: 0, storeDir: '/nix/store' })
  t.same(report.deletedPaths.sort(), [...other.paths].sort(), 'the unpinned closure went')
  t.ok(deletedObjects(report) > 0)

  // A server that never saw the deleted narinfos (the first one caches them for a minute).
  const fresh = await serve(t, { stores: { stores: {}, root: `file://${storePath}` }, signingKeyFiles: [keys.secretFile] })
  await pullAndCheck(t, dir, fresh.url, keys, pinned)
  await t.rejects(nixClient(dir, ['copy', '--from', fresh.url, '--to', `${dir}/other-store`, '--no-check-sigs', other.top]), 'the other closure is not there')
  t.equal(deletedObjects(await collectGarbage(new Cas(store), { retain: 0, grace: 0, storeDir: '/nix/store' })), 0, 'a second run deletes nothing')
})

import { randomBytes } from 'node:crypto'
import { utimes, writeFile, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { deletePaths } from '../../src/lifecycle/delete.ts'
import type { StoreConfig } from '../../src/stores/compose.ts'
import { build } from '../helpers/app.ts'
import { fetched, makePath, push } from '../helpers/push.ts'
import { tempDir } from '../helpers/trees.ts'
import { allKeys, deletedObjects, fsStore, gc, openStore, pushedPair } from './scenario.ts'


t.test('retention keeps paths pushed within it, with their closures; grace keeps young objects', async (t) => {
  const { config } = await pushedPair(t)
  const retained = await gc(t, config, { retain: 3_600_000 })
  t.equal(deletedObjects(retained), 0, 'everything was pushed within the last hour')
  t.equal(retained.keptPaths, 2)
  const graced = await gc(t, config, { grace: 3_600_000 })
  t.same(graced.deletedPaths, [], 'nothing is older than the grace period')
  t.equal(deletedObjects(graced), 0)
  const collected = await gc(t, config)
  t.equal(collected.deletedPaths.length, 2, 'without either, both go')
})

t.test('delete: refused while a remaining path or a pin needs the path, then its objects go at the next gc', async (t) => {
  const { config, dep, top } = await pushedPair(t)
  const { cas } = openStore(t, config)
  const options = { storeDir: '/nix/store' }
  await t.rejects(deletePaths(cas, [dep.storePath], options), { code: 'CONFLICT', message: new RegExp(`${top.storePath} → ${dep.storePath}`) })
  t.same(await deletePaths(cas, [top.storePath, dep.storePath], options), { deleted: [top.storePath, dep.storePath], absent: [] }, 'a whole closure may go')
  const replica = await build(t, { stores: config })
  t.equal(await fetched(replica, top), 'absent')
  const report = await gc(t, config, { retain: 3_600_000, settle: 3_600_000 })
  t.equal(await replica.inject({ url: `/nar/${top.nar.hash}.nar` }).then((response) => response.statusCode), 200, 'within the settle time the NAR of a deleted narinfo stays fetchable')
  t.equal(report.keptPaths, 0)
  await gc(t, config)
  const fresh = await build(t, { stores: config })
  t.equal(await fresh.inject({ url: `/nar/${top.nar.hash}.nar` }).then((response) => response.statusCode), 404, 'after it, it goes')
  t.same(await allKeys(cas.store), [], 'and the store is empty')
  t.same(await deletePaths(cas, [dep.storePath], { ...options, force: true }), { deleted: [], absent: [dep.storePath] })
})

t.test('a cache store: near copies far no longer has are collected too; stale fs temp files go', async (t) => {
  const near = await fsStore(t)
  const far = await fsStore(t)
  const config: StoreConfig = { stores: { near: { type: 'fs', path: near.path, fsync: false }, far: { type: 'fs', path: far.path, fsync: false }, main: { type: 'cache', near: 'near', far: 'far' } }, root: 'main' }
  const app = await build(t, { stores: config })
  const dir = await tempDir(t)
  const path = await makePath(dir, 'cached', { data: randomBytes(100_000) })
  t.equal(await push(app, path), 204)
  t.equal(await fetched(app, path), 'identical')
  // Another replica's collection deleted far's copies; this near side still holds them.
  const { cas: farCas } = openStore(t, far.config)
  const orphaned = (await allKeys(farCas.store)).filter((key) => key.startsWith('data/'))
  await farCas.store.deleteMany(orphaned)
  await mkdir(join(near.path, '.tmp'), { recursive: true })
  const temp = join(near.path, '.tmp', 'crashed.part')
  await writeFile(temp, randomBytes(1000))
  // Older than a write takes, younger than the hour after which a starting fs store removes it itself.
  await utimes(temp, new Date(Date.now() - 1_800_000), new Date(Date.now() - 1_800_000))
  const report = await gc(t, config)
  t.ok(report.near.objects >= orphaned.length, 'the near copies went')
  t.same(report.tempFiles, { objects: 1, bytes: 1000 }, 'and the crashed write')
  const { cas: nearCas } = openStore(t, near.config)
  t.same(await allKeys(nearCas.store), [], 'near holds nothing far does not')
})

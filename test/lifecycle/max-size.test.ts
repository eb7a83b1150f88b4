import { randomBytes } from 'node:crypto'
import t from 'tap'
import { Pins } from '../../src/lifecycle/pins.ts'
import { build } from '../helpers/app.ts'
import { fetched, makePath, push } from '../helpers/push.ts'
import { tempDir } from '../helpers/trees.ts'
import { checkExactlyNeeded, fsStore, gc, openStore, pushedAgo } from './scenario.ts'

const DAY = 86_400_000

t.test('--max-size evicts the least recently used paths, never one a kept path references, never a pinned closure', async (t) => {
  const store = await fsStore(t)
  const app = await build(t, { stores: store.config })
  const dir = await tempDir(t)
  const dep = await makePath(dir, 'dep', { data: randomBytes(200_000) })
  const top = await makePath(dir, 'top', { data: randomBytes(200_000) }, [dep])
  const lone = await makePath(dir, 'lone', { data: randomBytes(200_000) })
  for (const path of [dep, top, lone]) t.equal(await push(app, path), 204)
  // dep was used longest ago, but top needs it; lone comes next, top last.
  await pushedAgo(store.path, [dep], 5 * DAY)
  await pushedAgo(store.path, [lone], 4 * DAY)
  await pushedAgo(store.path, [top], 3 * DAY)
  const retain = 30 * DAY

  const all = await gc(t, store.config, { retain, maxSize: 2 ** 40, dryRun: true })
  t.same(all.evictedPaths, [], 'everything fits')
  const total = all.keptBytes as number
  t.ok(total > 600_000, 'the budget counts the data packs')
  const one = await gc(t, store.config, { retain, maxSize: total - 1, dryRun: true })
  t.same(one.evictedPaths, [lone.storePath], 'one eviction: the least recently used path no kept path references')
  t.ok((one.keptBytes as number) <= total - 200_000)
  const none = await gc(t, store.config, { retain, maxSize: 1, dryRun: true })
  t.same(none.evictedPaths, [lone.storePath, top.storePath, dep.storePath], 'dep goes only after top, which references it')

  const { cas } = openStore(t, store.config)
  await new Pins(cas.store, '/nix/store').add('release', [top.storePath])
  const pinned = await gc(t, store.config, { retain, maxSize: 1, dryRun: true })
  t.same(pinned.evictedPaths, [lone.storePath], 'a pinned closure is never evicted')
  await new Pins(cas.store, '/nix/store').remove('release')

  // A download counts as a use: lone, served now, becomes the most recently used.
  t.equal((await app.inject({ url: `/${lone.hash}.narinfo` })).statusCode, 200)
  await app.close()
  const downloaded = await gc(t, store.config, { retain, maxSize: 1, dryRun: true })
  t.same(downloaded.evictedPaths, [top.storePath, dep.storePath, lone.storePath])

  const report = await gc(t, store.config, { retain, maxSize: total - 1 })
  t.same(report.deletedPaths, [top.storePath], 'for real: the least recently used evictable path goes')
  const replica = await build(t, { stores: store.config })
  t.equal(await fetched(replica, top), 'absent')
  for (const path of [dep, lone]) t.equal(await fetched(replica, path), 'identical', `${path.base} is intact`)
  await checkExactlyNeeded(t, cas.store, [dep, lone])
})

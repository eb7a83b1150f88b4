import t from 'tap'
import { keys } from '../../src/cas/keys.ts'
import { AccessTimes, readAccessTimes } from '../../src/lifecycle/access-log.ts'
import { AccessRecorder } from '../../src/lifecycle/access-recorder.ts'
import { MemoryStore } from '../../src/stores/memory.ts'
import type { ObjectStore } from '../../src/stores/store.ts'
import { build } from '../helpers/app.ts'
import { fetched } from '../helpers/push.ts'
import { allKeys, gc, openStore, pushedAgo, pushedPair } from './scenario.ts'

const DAY = 86_400_000
const pathHash = (n: number): string => n.toString().padStart(32, '0')

t.test('the recorder writes one record per flush, bounded, and keeps what a failed flush held', async (t) => {
  const store = new MemoryStore('memory')
  const recorder = new AccessRecorder(store, { maxEntries: 3 })
  recorder.path(pathHash(1))
  recorder.path(pathHash(1))
  recorder.nar('1'.repeat(52))
  await recorder.flush()
  await recorder.flush()
  t.equal((await allKeys(store)).length, 1, 'one record; an empty recorder writes nothing')
  for (let n = 0; n < 5; n++) recorder.path(pathHash(n))
  t.equal(recorder.dropped, 1, 'the entry that found the recorder full is dropped; it starts a flush, which makes room')
  await recorder.close()
  const times = await readAccessTimes(store)
  t.same([...times.paths.keys()].sort(), [pathHash(0), pathHash(1), pathHash(2), pathHash(4)])
  t.same([...times.nars.keys()], ['1'.repeat(52)])
  t.equal(times.records.length, 3, 'the full recorder flushed early, then on close')

  const damaged = new AccessTimes()
  damaged.merge(`nixcas-access 1\np${'e'.repeat(32)}\nn${'1'.repeat(32)}\np${pathHash(9)} 12\nx\n`, 1000)
  t.same([[...damaged.paths], [...damaged.nars]], [[[pathHash(9), 12]], []], 'lines that are not entries (not base-32, wrong length) are skipped')
  damaged.merge(`nixcas-access 2\np${pathHash(8)}\n`, 1000)
  t.notOk(damaged.paths.has(pathHash(8)), 'a record of another version is not read')

  const failing: ObjectStore = Object.assign(Object.create(store) as ObjectStore, { put: () => Promise.reject(new Error('down')) })
  const errors: unknown[] = []
  const unlucky = new AccessRecorder(failing, { maxEntries: 10, onError: (error) => errors.push(error) })
  unlucky.path(pathHash(7))
  await t.rejects(unlucky.flush(), /down/)
  t.equal(unlucky.size, 1, 'a failed flush keeps its entries for the next one')
  t.equal(errors.length, 1)
})

t.test('retention counts downloads: a narinfo or NAR served within --retain keeps the path and its closure; records survive restarts and are compacted', async (t) => {
  const { config, path, dep, top } = await pushedPair(t)
  await pushedAgo(path, [dep, top], 10 * DAY)
  const dry = await gc(t, config, { retain: DAY, dryRun: true })
  t.equal(dry.deletedPaths.length, 2, 'pushed long ago and never downloaded: both would go')

  // One replica serves top's narinfo, another dep's NAR; each writes its record as it shuts down.
  const first = await build(t, { stores: config })
  t.equal((await first.inject({ url: `/${top.hash}.narinfo` })).statusCode, 200)
  await first.close()
  const second = await build(t, { stores: config })
  t.equal((await second.inject({ url: `/nar/${dep.nar.hash}.nar` })).statusCode, 200)
  await second.close()
  const { cas } = openStore(t, config)
  t.equal((await allKeys(cas.store)).filter((key) => key.startsWith(keys.accessRecords)).length, 2, 'one record per replica')

  const report = await gc(t, config, { retain: DAY })
  t.same(report.deletedPaths, [], 'top was downloaded (its narinfo), and keeps dep')
  t.equal(report.keptPaths, 2)
  t.same(report.accessRecords, { read: 2, written: 1 }, 'the records were compacted into one')
  const compacted = await readAccessTimes(cas.store)
  t.ok((compacted.paths.get(top.hash) ?? 0) > Date.now() - DAY, 'the compacted record keeps the time of the download')
  t.ok(compacted.nars.has(dep.nar.hash))
  const again = await gc(t, config, { retain: DAY })
  t.same(again.deletedPaths, [], 'and the next run still sees it')

  // A month later nobody downloaded them: they go, and so do their access entries.
  const later = await gc(t, config, { retain: 0 })
  t.equal(later.deletedPaths.length, 2)
  t.same([...(await readAccessTimes(cas.store)).paths.keys()], [], 'entries of deleted paths are dropped by compaction')
  const replica = await build(t, { stores: config })
  t.equal(await fetched(replica, top), 'absent')
})

t.test('a NAR download alone retains its path (Nix keeps narinfos for a month and fetches only the NAR)', async (t) => {
  const { config, path, dep, top } = await pushedPair(t)
  await pushedAgo(path, [dep, top], 10 * DAY)
  const app = await build(t, { stores: config })
  t.equal((await app.inject({ url: `/nar/${dep.nar.hash}.nar` })).statusCode, 200)
  await app.close()
  const report = await gc(t, config, { retain: DAY })
  t.same(report.deletedPaths, [top.storePath], 'dep stays, top (not downloaded) goes')
})

import { randomBytes } from 'node:crypto'
import t from 'tap'
import { keys } from '../../src/cas/keys.ts'
import { digestOf } from '../../src/castore/digest.ts'
import { Pins } from '../../src/lifecycle/pins.ts'
import { encodeNixbase32 } from '../../src/nix/nixbase32.ts'
import { build } from '../helpers/app.ts'
import { fetched, makePath, push, type TestPath } from '../helpers/push.ts'
import { writeOldLayoutPath } from '../helpers/synthetic-store.ts'
import { tempDir } from '../helpers/trees.ts'
import { allKeys, fsStore, gc, openStore } from './scenario.ts'

/**
 * Filters that err a lot: no exact phase, sized for 100 members at a 90 % rate (192 bits,
 * one hash). The kept paths' 60 chunk-level keys set about a quarter of the bits.
 */
const TINY = { markSet: { expected: 100, falsePositiveRate: 0.9, exactLimit: 0 } }
const shape = { files: 4, chunksPerFile: 6, chunkSize: 200 }

t.test('old layout: a tiny mark filter keeps every kept path complete (and garbage); a right-sized one then collects the garbage', async (t) => {
  const { config } = await fsStore(t)
  const { cas } = openStore(t, config)
  const keptDep = await writeOldLayoutPath(cas, 'kept dep', shape)
  const keptTop = await writeOldLayoutPath(cas, 'kept top', shape, [keptDep])
  const gone = await Promise.all(Array.from({ length: 8 }, (_, index) => writeOldLayoutPath(cas, `gone ${index}`, shape)))
  // Chunks of an aborted upload of the old layout: no tree names them.
  for (let index = 0; index < 40; index++) {
    const bytes = randomBytes(100)
    await cas.putChunk(digestOf(bytes), bytes)
  }
  await new Pins(cas.store, '/nix/store').add('kept', [keptTop.storePath])
  const kept = [keptDep, keptTop]
  const needed = new Set([...kept.flatMap((path) => path.objects), keys.pin('kept')])
  const garbage = (await allKeys(cas.store)).filter((key) => !needed.has(key))
  t.ok(garbage.length > 8 * 30, `${garbage.length} garbage objects`)

  const asTestPath = (path: typeof keptTop): TestPath => ({ ...path, nar: { bytes: path.nar, hash: encodeNixbase32(path.narHash.digest) }, references: [] })
  const check = async (): Promise<void> => {
    const app = await build(t, { stores: config })
    for (const path of kept) t.equal(await fetched(app, asTestPath(path)), 'identical', `${path.base} renders byte-identical`)
    for (const path of gone) t.equal(await fetched(app, asTestPath(path)), 'absent', `${path.base} is gone`)
  }

  const tiny = await gc(t, config, TINY)
  t.equal(tiny.deletedPaths.length, gone.length, 'the unpinned paths went')
  t.ok(tiny.marks.leaves.approximate && tiny.marks.leaves.filterBytes > 0, 'the chunk-level keys were in filters, and the report says so')
  const present = await allKeys(cas.store)
  t.same([...needed].filter((key) => !present.includes(key)), [], 'nothing the kept paths need was deleted')
  const keptGarbage = present.filter((key) => !needed.has(key))
  // Each of some 290 garbage keys tests as marked with a chance of about 1 in 4: keeping none would take a chance below 10^-30.
  t.ok(keptGarbage.length > 0, `the filter's false positives kept ${keptGarbage.length} objects that could go`)
  t.ok(keptGarbage.every((key) => /^(chunks|blobs|dirs|packs)\//.test(key)), 'and only chunk-level ones: no record, PathInfo or upload name')
  await check()

  const right = await gc(t, config)
  t.notOk(right.marks.leaves.approximate, 'a right-sized run of this size marks exactly')
  t.same(await allKeys(cas.store), [...needed].sort(), 'a right-sized run leaves exactly what the kept paths need')
  t.equal(Object.values(right.deleted).reduce((sum, tally) => sum + tally.objects, 0), keptGarbage.length, 'having deleted what the tiny filter kept')
  await check()
})

t.test('data packs: a tiny usage filter errs only in the dead-bytes report; the shared pack and the kept closure stay whole', async (t) => {
  const { config } = await fsStore(t)
  const app = await build(t, { stores: config, packSize: 1024 * 1024 })
  const dir = await tempDir(t)
  const shared = randomBytes(600_000)
  const gonePath = await makePath(dir, 'gone', { shared, own: randomBytes(300_000) })
  const keptPath = await makePath(dir, 'kept', { shared, own: randomBytes(100_000) })
  // The kept path dedups against the pack of the one that goes, which is then partly dead.
  for (const path of [gonePath, keptPath]) t.equal(await push(app, path), 204)
  const { cas } = openStore(t, config)
  await new Pins(cas.store, '/nix/store').add('kept', [keptPath.storePath])
  const report = await gc(t, config, TINY)
  t.same(report.deletedPaths, [gonePath.storePath])
  t.ok(report.partlyDeadPacks >= 1 && report.deadPackBytes >= 300_000, 'the pack the deleted path shared is reported partly dead (a false positive can only make it look deader)')
  const reader = await build(t, { stores: config })
  t.equal(await fetched(reader, keptPath), 'identical', 'the kept path renders byte-identical')
  t.equal(await fetched(reader, gonePath), 'absent')
})

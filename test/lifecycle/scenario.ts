import { randomBytes } from 'node:crypto'
import { utimes } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Test } from 'tap'
import { Cas } from '../../src/cas/cas.ts'
import { keys } from '../../src/cas/keys.ts'
import { decodeIndexSegment } from '../../src/castore/index-segment.ts'
import { decodeNarRecord } from '../../src/castore/nar-record.ts'
import { collectGarbage, type GcOptions, type GcReport } from '../../src/lifecycle/gc.ts'
import { Pins } from '../../src/lifecycle/pins.ts'
import type { NixHash } from '../../src/nix/hash.ts'
import { decodeNixbase32 } from '../../src/nix/nixbase32.ts'
import { composeStores, type StoreConfig } from '../../src/stores/compose.ts'
import type { ObjectStore } from '../../src/stores/store.ts'
import { build } from '../helpers/app.ts'
import { silentLogger } from '../helpers/log.ts'
import { fetched, makePath, push, type TestPath } from '../helpers/push.ts'
import { tempDir } from '../helpers/trees.ts'

const MiB = 1024 * 1024

/** Opens the store the way `nixcas gc` does (its own stack over the same bucket or directory), closed when the test ends. */
export function openStore(t: Test, config: StoreConfig): { cas: Cas; instances: ObjectStore[] } {
  const stack = composeStores(config, { logger: silentLogger })
  t.teardown(() => stack.close())
  return { cas: new Cas(stack.root), instances: [...stack.instances.values()] }
}

export async function gc(t: Test, config: StoreConfig, options: Partial<GcOptions> = {}): Promise<GcReport> {
  const { cas, instances } = openStore(t, config)
  return collectGarbage(cas, { retain: 0, grace: 0, storeDir: '/nix/store', instances, ...options })
}

export const deletedObjects = (report: GcReport): number => Object.values(report.deleted).reduce((sum, tally) => sum + tally.objects, 0)

/** Every key in a store (test-sized stores). */
export async function allKeys(store: ObjectStore): Promise<string[]> {
  const found: string[] = []
  for await (const object of store.list('')) found.push(object.key)
  return found.sort()
}

const narHashOf = (path: TestPath): NixHash => ({ algorithm: 'sha256', digest: decodeNixbase32(path.nar.hash, 32) })

/**
 * Checks the store holds exactly what the kept paths need, worked out from their records
 * alone (not with the collector's code): their PathInfos, NAR records and the data packs
 * those name, upload names pointing at them, pins, and index segments naming only kept packs.
 */
export async function checkExactlyNeeded(t: Test, store: ObjectStore, kept: readonly TestPath[]): Promise<void> {
  const needed = new Set<string>()
  const packs = new Set<string>()
  for (const path of kept) {
    needed.add(keys.pathInfo(path.hash))
    needed.add(keys.narRecord(narHashOf(path)))
    const record = await store.get(keys.narRecord(narHashOf(path)))
    for (const pack of record ? (decodeNarRecord(record).tree?.packs ?? []) : []) packs.add(keys.dataPack(pack))
  }
  for (const pack of packs) needed.add(pack)
  const keptNars = new Set(kept.map((path) => path.nar.hash))
  const present = await allKeys(store)
  const extra: string[] = []
  for (const key of present) {
    if (needed.has(key) || key.startsWith(keys.pins) || key.startsWith(keys.accessRecords)) continue
    const bytes = Buffer.from((await store.get(key)) ?? [])
    if (key.startsWith('uploads/') && keptNars.has(bytes.toString('latin1'))) continue
    if (key.startsWith(keys.indexSegments) && decodeIndexSegment(bytes).every((chunk) => packs.has(keys.dataPack(chunk.pack)))) continue
    extra.push(key)
  }
  t.same(extra, [], 'nothing is stored that the kept paths do not need')
  t.same([...needed].filter((key) => !present.includes(key)), [], 'everything the kept paths need is stored')
}

/** A store in a fresh directory, as a configuration. */
export async function fsStore(t: Test): Promise<{ config: StoreConfig; path: string }> {
  const path = await tempDir(t)
  return { config: { stores: { disk: { type: 'fs', path, fsync: false } }, root: 'disk' }, path }
}

/** A fresh fs store holding a two-path closure (`top` references `dep`), pushed through the app. */
export async function pushedPair(t: Test, size = 10_000): Promise<{ config: StoreConfig; path: string; dep: TestPath; top: TestPath }> {
  const store = await fsStore(t)
  const app = await build(t, { stores: store.config })
  const dir = await tempDir(t)
  const dep = await makePath(dir, 'dep', { data: randomBytes(size) })
  const top = await makePath(dir, 'top', { data: randomBytes(size) }, [dep])
  for (const path of [dep, top]) t.equal(await push(app, path), 204, `${path.base} pushed`)
  return { ...store, dep, top }
}

/**
 * Waits for the store's clock to move on: S3 times objects to the second, so an object
 * written in the second a run starts counts as young (kept: the safe side), and a test
 * that wants garbage gone lets that second pass first.
 */
export async function clockTicks(resolution: number): Promise<void> {
  if (resolution > 1) await sleep(resolution - (Date.now() % resolution) + 20)
}

/**
 * The scenario on one store: closures that share chunks (B's dependency dedups
 * against A's packs), an orphaned NAR, a refused and a truncated upload; B pinned, then
 * `gc --retain 0s --grace 0s`. B renders byte-identical from a fresh replica, A and C are
 * gone, the store holds exactly what B needs, and a second run deletes nothing.
 */
export async function pinnedClosureSurvives(t: Test, config: StoreConfig, clock: { resolution: number } = { resolution: 1 }): Promise<void> {
  const app = await build(t, { stores: config, packSize: MiB })
  const dir = await tempDir(t)
  const shared = randomBytes(2 * MiB)
  const a1 = await makePath(dir, 'a-dep', { shared, own: randomBytes(100_000) })
  const a2 = await makePath(dir, 'a-top', { bin: randomBytes(50_000) }, [a1])
  const b1 = await makePath(dir, 'b-dep', { shared, own: randomBytes(100_000) })
  const b2 = await makePath(dir, 'b-top', { bin: randomBytes(50_000) }, [b1])
  const c = await makePath(dir, 'c', { alone: randomBytes(300_000) })
  for (const path of [a1, a2, b1, b2, c]) t.equal(await push(app, path), 204, `${path.base} pushed`)

  const orphan = await makePath(dir, 'orphan', { data: randomBytes(1.5 * MiB) })
  t.equal((await app.inject({ method: 'PUT', url: `/nar/${orphan.nar.hash}.nar`, payload: orphan.nar.bytes })).statusCode, 201, 'a NAR whose narinfo never comes')
  const refused = await makePath(dir, 'refused', { data: randomBytes(3 * MiB) })
  t.equal((await app.inject({ method: 'PUT', url: `/nar/${c.nar.hash}.nar`, payload: refused.nar.bytes })).statusCode, 400, 'a NAR refused for its name, after its packs went up')
  const truncated = await makePath(dir, 'truncated', { data: randomBytes(3 * MiB) })
  t.equal((await app.inject({ method: 'PUT', url: '/nar/truncated.nar', payload: truncated.nar.bytes.subarray(0, 2.5 * MiB) })).statusCode, 400, 'a NAR cut short')

  const { cas } = openStore(t, config)
  await new Pins(cas.store, '/nix/store').add('release', [b2.storePath])
  // Index segments are not synced to disk: one cut short by a crash must not stop a collection.
  await cas.store.put(keys.indexSegment('000000000-cut-short'), Buffer.alloc(0))
  await clockTicks(clock.resolution)
  const before = await allKeys(cas.store)
  const dry = await gc(t, config, { dryRun: true })
  t.same(dry.deletedPaths.sort(), [a1, a2, c].map((path) => path.storePath).sort(), 'a dry run names the paths that would go')
  t.ok(deletedObjects(dry) > 5, 'and the objects')
  t.same(await allKeys(cas.store), before, 'and deletes nothing')

  const report = await gc(t, config)
  t.same(report.deletedPaths.sort(), dry.deletedPaths, 'the unpinned paths went')
  t.equal(report.keptPaths, 2)
  t.ok(report.partlyDeadPacks >= 1 && report.deadPackBytes >= 100_000, 'the pack B shares with A is kept, its dead bytes reported')
  t.same(report.missingReferences, [])

  const replica = await build(t, { stores: config })
  for (const path of [b1, b2]) t.equal(await fetched(replica, path), 'identical', `${path.base} renders byte-identical`)
  for (const path of [a1, a2, c]) t.equal(await fetched(replica, path), 'absent', `${path.base} is 404`)
  t.equal((await replica.inject({ url: `/nar/${a2.nar.hash}.nar` })).statusCode, 404, 'and so is its NAR')
  await checkExactlyNeeded(t, cas.store, [b1, b2])

  const again = await gc(t, config)
  t.equal(deletedObjects(again), 0, 'a second run deletes nothing')
  t.same(again.deletedPaths, [])
}

/** Makes paths look pushed `ago` ms before now (the fs store's time of an object is its mtime). */
export async function pushedAgo(root: string, paths: readonly TestPath[], ago: number): Promise<void> {
  const then = new Date(Date.now() - ago)
  for (const path of paths) await utimes(join(root, keys.pathInfo(path.hash)), then, then)
}

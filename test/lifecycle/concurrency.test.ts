import { randomBytes, randomInt } from 'node:crypto'
import t from 'tap'
import { DedupIndex } from '../../src/cas/dedup-index.ts'
import { BinaryCache } from '../../src/cache/binary-cache.ts'
import { isNixcasError } from '../../src/errors.ts'
import { collectGarbage } from '../../src/lifecycle/gc.ts'
import { Pins } from '../../src/lifecycle/pins.ts'
import { iterate } from '../../src/stores/store.ts'
import type { StoreConfig } from '../../src/stores/compose.ts'
import { build } from '../helpers/app.ts'
import { fetched, makePath, narinfoOf, type TestPath } from '../helpers/push.ts'
import { tempDir } from '../helpers/trees.ts'
import { openStore } from './scenario.ts'

const MiB = 1024 * 1024

/** A replica's write path: its own store stack over the shared directory, its own dedup index. */
function replica(t: Parameters<typeof openStore>[0], config: StoreConfig): BinaryCache {
  const { cas } = openStore(t, config)
  return new BinaryCache(cas, {
    storeDir: '/nix/store',
    priority: 40,
    signingKeys: [],
    trustedUploadKeys: [],
    requireUploadSignature: false,
    narinfoCacheEntries: 100,
    allowNarinfoOverwrite: false,
    maxSignatures: 8,
    maxLogSize: MiB,
    ingest: { packSize: MiB, dedup: new DedupIndex(100_000) },
  })
}

/** Pushes as nix copy does; a refusal caused by the collector (its reference or NAR went) is an answer, not a failure. */
async function pushVia(cache: BinaryCache, path: TestPath): Promise<'pushed' | 'refused'> {
  try {
    await cache.putNar(`${path.nar.hash}.nar`, iterate([path.nar.bytes]))
    await cache.putNarInfo(path.hash, narinfoOf(path))
    return 'pushed'
  } catch (error) {
    if (isNixcasError(error, 'BAD_NARINFO') || isNixcasError(error, 'GC_IN_PROGRESS')) return 'refused'
    throw error
  }
}

t.test('GC in a loop with zero grace while two replicas push overlapping closures: every visible path renders byte-identical, its closure complete', async (t) => {
  const config: StoreConfig = { stores: { disk: { type: 'fs', path: await tempDir(t), fsync: false } }, root: 'disk' }
  const dir = await tempDir(t)
  // Shared blobs, each more than a pack: closures of both writers dedup against each other's packs.
  const pool = Array.from({ length: 4 }, () => randomBytes(1.2 * MiB))
  const writers = [replica(t, config), replica(t, config)]
  const paths = new Map<string, TestPath>()
  const outcomes = { pushed: 0, refused: 0 }
  let writing = writers.length

  const write = async (cache: BinaryCache, id: number): Promise<void> => {
    try {
      for (let round = 0; round < 6; round++) {
        const files = { shared: pool[randomInt(pool.length)] as Buffer, other: pool[(id + round) % pool.length] as Buffer, own: randomBytes(50_000) }
        const dep = await makePath(dir, `w${id}-r${round}-dep`, files)
        const top = await makePath(dir, `w${id}-r${round}-top`, { bin: randomBytes(20_000) }, [dep])
        for (const path of [dep, top]) paths.set(path.hash, path)
        if ((await pushVia(cache, dep)) === 'refused') {
          outcomes.refused++
          continue
        }
        outcomes.pushed++
        outcomes[await pushVia(cache, top)]++
        await cache.refreshDedup()
      }
    } finally {
      writing--
    }
  }
  const { cas, instances } = openStore(t, config)
  let runs = 0
  const collect = async (): Promise<void> => {
    while (writing > 0) {
      await collectGarbage(cas, { retain: 0, grace: 0, storeDir: '/nix/store', instances, force: false })
      runs++
    }
  }
  await Promise.all([collect(), ...writers.map((cache, id) => write(cache, id))])
  t.ok(runs > 0, `${runs} collections ran during ${outcomes.pushed} pushes (${outcomes.refused} refused)`)

  // Pin what is visible now, collect once more, and look through a replica that never cached anything.
  const visible: TestPath[] = []
  for await (const object of cas.store.list('info/')) {
    const path = paths.get(object.key.slice(object.key.lastIndexOf('/') + 1))
    if (path) visible.push(path)
  }
  t.ok(visible.length > 0, `${visible.length} paths visible after the writers finished`)
  const check = async (): Promise<void> => {
    const reader = await build(t, { stores: config })
    for (const path of visible) {
      t.equal(await fetched(reader, path), 'identical', `${path.base} renders byte-identical`)
      for (const reference of path.references) t.equal(await fetched(reader, paths.get(reference.slice(0, 32)) as TestPath), 'identical', `and so does its reference ${reference}`)
    }
  }
  await check()
  await new Pins(cas.store, '/nix/store').add('survivors', visible.map((path) => path.storePath))
  await collectGarbage(cas, { retain: 0, grace: 0, storeDir: '/nix/store', instances })
  await check()
})

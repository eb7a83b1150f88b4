import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { keys } from '../../src/cas/keys.ts'
import { decodeNarRecord } from '../../src/castore/nar-record.ts'
import { decodeNixbase32 } from '../../src/nix/nixbase32.ts'
import { storeStats } from '../../src/lifecycle/stats.ts'
import { verifyStore } from '../../src/lifecycle/verify.ts'
import { allKeys, openStore, pushedPair } from './scenario.ts'

t.test('verify finds nothing in an intact store, then a corrupt data pack and an incomplete closure; stats counts paths and bytes', async (t) => {
  const { config, path, dep, top } = await pushedPair(t, 200_000)
  const { cas } = openStore(t, config)

  const intact = await verifyStore(cas)
  t.same(intact, { paths: 2, nars: 2, dataPacks: 2, findings: [] })
  const stats = await storeStats(cas)
  t.equal(stats.paths, 2)
  t.equal(stats.logicalBytes, dep.nar.bytes.length + top.nar.bytes.length)
  t.equal(stats.objects.data?.objects, 2)
  t.ok(stats.contentBytes >= 400_000 && stats.storedBytes > stats.contentBytes)

  t.equal((await allKeys(cas.store)).filter((key) => key.startsWith('data/')).length, 2)
  const record = decodeNarRecord((await cas.store.get(keys.narRecord({ algorithm: 'sha256', digest: decodeNixbase32(top.nar.hash, 32) }))) as Buffer)
  const damaged = keys.dataPack(record.tree?.packs[0] as Buffer)
  const bytes = (await cas.store.get(damaged)) as Buffer
  bytes[100] = (bytes[100] as number) ^ 0xff
  await writeFile(join(path, damaged), bytes)
  await cas.store.delete(keys.pathInfo(dep.hash))
  const report = await verifyStore(cas)
  t.equal(report.paths, 1)
  t.equal(report.findings.length, 3, 'the closure, the NAR that no longer renders, the pack')
  t.match(report.findings, [
    { key: keys.pathInfo(top.hash), problem: /its reference .*-dep is not in the cache/ },
    { problem: /renders to|digest/ },
    { key: damaged, problem: /does not match its digest/ },
  ])
})

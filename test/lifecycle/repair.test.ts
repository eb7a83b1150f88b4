import { execFile } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import t, { type Test } from 'tap'
import { Cas } from '../../src/cas/cas.ts'
import { copyHolders, repairFindings } from '../../src/lifecycle/repair.ts'
import { verifyStore } from '../../src/lifecycle/verify.ts'
import { composeStores, type StoreConfig } from '../../src/stores/compose.ts'
import { build } from '../helpers/app.ts'
import { silentLogger } from '../helpers/log.ts'
import { fetched, makePath, push } from '../helpers/push.ts'
import { tempDir } from '../helpers/trees.ts'
import { allKeys } from './scenario.ts'

const cli = new URL('../../src/cli.ts', import.meta.url).pathname

/** `nixcas verify [--repair]` on a configuration file: its exit code and output. */
function verifyCli(configFile: string, repair: boolean): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', cli, 'verify', '--config', configFile, ...(repair ? ['--repair'] : [])], (error, stdout, stderr) => {
      resolve({ code: error ? Number(error.code ?? 1) : 0, output: `${stdout}${stderr}` })
    })
  })
}

/** Two fs directories under one composition (`main`), a path pushed through it, and its one data pack. */
async function twoCopies(t: Test, type: 'cache' | 'race'): Promise<{ config: StoreConfig; dirs: [string, string]; pack: string; configFile: string; path: Awaited<ReturnType<typeof makePath>> }> {
  const dirs: [string, string] = [await tempDir(t), await tempDir(t)]
  const main = type === 'cache' ? { type: 'cache', near: 'one', far: 'two' } : { type: 'race', stores: ['one', 'two'] }
  const config: StoreConfig = { stores: { one: { type: 'fs', path: dirs[0], fsync: false }, two: { type: 'fs', path: dirs[1], fsync: false }, main }, root: 'main' }
  const app = await build(t, { stores: config })
  const path = await makePath(await tempDir(t), 'repaired', { data: randomBytes(300_000) })
  t.equal(await push(app, path), 204)
  await app.close()
  const packs = (await allKeys(composeStores(config, { logger: silentLogger }).root)).filter((key) => key.startsWith('data/'))
  t.equal(packs.length, 1)
  const configFile = join(await tempDir(t), 'nixcas.json')
  await writeFile(configFile, JSON.stringify(config))
  return { config, dirs, pack: packs[0] as string, configFile, path }
}

async function flipByte(dir: string, key: string): Promise<void> {
  const file = join(dir, key)
  const bytes = await readFile(file)
  bytes[1000] = (bytes[1000] as number) ^ 0x01
  await writeFile(file, bytes)
}

t.test('verify --repair: a cache whose near copy is corrupt gets far\'s copy back; exit 0 once nothing remains', async (t) => {
  const { config, dirs, pack, configFile, path } = await twoCopies(t, 'cache')
  await flipByte(dirs[0], pack)
  const stack = composeStores(config, { logger: silentLogger })
  t.teardown(() => stack.close())
  const report = await verifyStore(new Cas(stack.root), { copies: copyHolders(stack.instances.values()) })
  t.ok(report.findings.some((finding) => finding.key === pack && /does not match its digest \(the copy in store "one"\)/.test(finding.problem)), 'the corrupt near copy is found, though far\'s is good')
  t.ok(report.findings.some((finding) => /renders to/.test(finding.problem)), 'and the NAR that renders wrong from it (trusted disks are not re-checked when serving)')
  const found = await verifyCli(configFile, false)
  t.equal(found.code, 1, 'verify alone exits 1')
  const repaired = await verifyCli(configFile, true)
  t.equal(repaired.code, 0, `verify --repair exits 0: ${repaired.output}`)
  t.match(repaired.output, /corrupt copy replaced in one[\s\S]*after repair: 0 findings/)
  t.ok((await readFile(join(dirs[0], pack))).equals(await readFile(join(dirs[1], pack))), 'near holds far\'s bytes again')
  const app = await build(t, { stores: config })
  t.equal(await fetched(app, path), 'identical')
})

t.test('verify --repair: a race store repairs either member from the other; with no good copy the finding remains and the exit is 1', async (t) => {
  const { config, dirs, pack, configFile } = await twoCopies(t, 'race')
  await flipByte(dirs[1], pack)
  const stack = composeStores(config, { logger: silentLogger })
  t.teardown(() => stack.close())
  const copies = copyHolders(stack.instances.values())
  const report = await verifyStore(new Cas(stack.root), { copies })
  t.same(await repairFindings(report.findings, copies), [{ key: pack, repaired: ['two'], unrepaired: [] }])
  t.same((await verifyStore(new Cas(stack.root), { copies })).findings, [])

  await flipByte(dirs[0], pack)
  await flipByte(dirs[1], pack)
  const hopeless = await verifyCli(configFile, true)
  t.equal(hopeless.code, 1, 'findings remain: exit 1')
  t.match(hopeless.output, new RegExp(`${pack}: no good copy anywhere; left in one, two`))
})

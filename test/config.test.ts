import { readdir, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import t from 'tap'
import { parseConfigText, readConfigFile, storeConfigOf } from '../src/config.ts'
import { composeStores } from '../src/stores/compose.ts'
import { silentLogger } from './helpers/log.ts'
import { tempDir } from './helpers/trees.ts'

const configDir = new URL('../config/', import.meta.url).pathname

t.test('the shipped configurations compose without touching a store', async (t) => {
  const files = (await readdir(configDir)).filter((name) => name.endsWith('.yaml'))
  t.ok(files.includes('default.yaml'))
  for (const name of files) {
    const file = join(configDir, name)
    const stack = composeStores(storeConfigOf(await readConfigFile(file), file), { logger: silentLogger, baseDir: dirname(file) })
    t.ok(stack.root.name, `${name}: root ${stack.root.name}`)
    await stack.close()
  }
})

t.test('YAML and JSON files; errors name the file', async (t) => {
  const dir = await tempDir(t)
  await writeFile(join(dir, 'c.json'), JSON.stringify({ stores: { m: { type: 'memory' } }, root: 'm' }))
  t.same(storeConfigOf(await readConfigFile(join(dir, 'c.json')), 'c.json'), { stores: { m: { type: 'memory' } }, root: 'm' })
  t.throws(() => parseConfigText('stores: [1, 2', 'bad.yaml'), { code: 'BAD_CONFIG', message: /^bad\.yaml: / })
  t.throws(() => parseConfigText('a: 1\na: 2\n', 'dup.yaml'), { code: 'BAD_CONFIG', message: /dup\.yaml: .*unique/i })
  t.throws(() => parseConfigText('{', 'bad.json'), { code: 'BAD_CONFIG', message: /bad\.json/ })
  t.throws(() => parseConfigText('- a\n', 'list.yaml'), { code: 'BAD_CONFIG', message: /expected a mapping/ })
  t.throws(() => storeConfigOf({ stores: {} }, 'x.yaml'), { code: 'BAD_CONFIG', message: /"root" must name/ })
  t.throws(() => storeConfigOf({ stores: [], root: 'a' }, 'x.yaml'), { code: 'BAD_CONFIG', message: /"stores" must be a mapping/ })
  await t.rejects(readConfigFile(join(dir, 'missing.yaml')), { code: 'BAD_CONFIG', message: /cannot read configuration/ })
})

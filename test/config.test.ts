import { readdir, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import t from 'tap'
import { parseConfigText, readConfigFile, resolveServerConfig, storeConfigOf } from '../src/config.ts'
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

t.test('server configuration: defaults, file, environment and flags in that order', async (t) => {
  const dir = await tempDir(t)
  const file = join(dir, 'nixcas.yaml')
  await writeFile(file, 'listen: 0.0.0.0:8080\npriority: 10\nnarinfoMaxAge: 99\nstores:\n  m: { type: memory }\nroot: m\nauth:\n  writeUsers: { alice: pw }\n')
  const fromFile = await resolveServerConfig({ config: file }, {})
  t.match(fromFile, { host: '0.0.0.0', port: 8080, priority: 10, narinfoMaxAge: 99, baseDir: dir, auth: { writeUsers: { alice: 'pw' } } })
  const fromEnv = await resolveServerConfig({ config: file }, { NIXCAS_PRIORITY: '20', NIXCAS_LISTEN: '[::1]:9000', NIXCAS_WRITE_TOKENS: 'a, b' })
  t.match(fromEnv, { host: '::1', port: 9000, priority: 20, auth: { writeTokens: ['a', 'b'] } })
  const fromFlags = await resolveServerConfig({ config: file, priority: '30', listen: ':7000' }, { NIXCAS_PRIORITY: '20' })
  t.match(fromFlags, { host: '127.0.0.1', port: 7000, priority: 30 })
  const defaults = await resolveServerConfig({}, {})
  t.match(defaults, { host: '127.0.0.1', port: 5000, priority: 40, storeDir: '/nix/store', stores: { root: 'disk' } })
  t.equal(defaults.baseDir, configDir.replace(/\/$/, ''), 'the default config is the shipped one')
  const byUrl = await resolveServerConfig({ store: 'memory://' }, {})
  t.same(byUrl.stores, { stores: {}, root: 'memory://' })
})

t.test('bad server configuration names the field', async (t) => {
  const dir = await tempDir(t)
  const write = async (text: string): Promise<string> => {
    const file = join(dir, `c${Math.random()}.yaml`)
    await writeFile(file, `stores: { m: { type: memory } }\nroot: m\n${text}`)
    return file
  }
  const cases: [string, Parameters<typeof resolveServerConfig>[0], NodeJS.ProcessEnv, RegExp][] = [
    ['bad listen', { store: 'memory://', listen: 'nowhere' }, {}, /field "listen"/],
    ['bad port', { store: 'memory://', listen: '127.0.0.1:99999' }, {}, /field "listen"/],
    ['bad priority', { store: 'memory://', priority: 'high' }, {}, /field "priority"/],
    ['bad env', { store: 'memory://' }, { NIXCAS_WINDOW_BYTES: 'lots' }, /field "windowBytes"/],
    ['window too small', { store: 'memory://' }, { NIXCAS_WINDOW_BYTES: '1000' }, /field "windowBytes"/],
    ['bad boolean', { store: 'memory://' }, { NIXCAS_COMPRESS_NARS: 'maybe' }, /field "compressNars"/],
    ['unknown field', { config: await write('colour: red\n') }, {}, /field "colour": unknown field/],
    ['relative store dir', { config: await write('storeDir: nix/store\n') }, {}, /field "storeDir"/],
    ['bad users', { config: await write('auth: { writeUsers: [a] }\n') }, {}, /field "auth.writeUsers"/],
    ['missing file', { config: join(dir, 'missing.yaml') }, {}, /cannot read configuration/],
  ]
  for (const [label, flags, env, message] of cases) await t.rejects(resolveServerConfig(flags, env), { code: 'BAD_CONFIG', message }, label)
})

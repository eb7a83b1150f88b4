import { access, readdir, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import t from 'tap'
import { parseConfigText, prepareServer, readConfigFile, resolveConfiguration, resolveServerConfig, storeConfigOf } from '../src/config.ts'
import { formatPublicKey, formatSecretKey, generateSecretKey } from '../src/nix/signing.ts'
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
    await writeFile(file, text === '' ? 'stores: {}\n' : `stores: { m: { type: memory } }\nroot: m\n${text}`)
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
    ['unknown nested field', { config: await write('pressure: { colour: red }\n') }, {}, /field "pressure\.colour": unknown field .*known here: maxEventLoopDelay, /],
    ['unknown auth field', { config: await write('auth: { admins: [a] }\n') }, {}, /field "auth\.admins": unknown field/],
    ['section not a mapping', { config: await write('auth: open\n') }, {}, /field "auth": expected a mapping/],
    ['duration not a duration', { config: await write('narinfoMaxAge: abc\n') }, {}, /field "narinfoMaxAge": expected a duration/],
    ['duration finer than its unit', { config: await write('narinfoMaxAge: 1500ms\n') }, {}, /field "narinfoMaxAge": expected a whole number of seconds/],
    ['bad nested env', { store: 'memory://' }, { NIXCAS_PRESSURE_RETRY_AFTER: '0' }, /field "pressure\.retryAfter": must be at least 1s, got 0 \(from NIXCAS_PRESSURE_RETRY_AFTER\)/],
    ['timeout beyond setTimeout', { store: 'memory://' }, { NIXCAS_SHUTDOWN_TIMEOUT: '30d' }, /field "shutdownTimeout": must be at most/],
    ['unknown log level', { store: 'memory://' }, { NIXCAS_LOG_LEVEL: 'loud' }, /field "logLevel": expected one of fatal, /],
    ['no root', { config: await write('') }, {}, /field "root": is required/],
    ['both --store and --config', { store: 'memory://', config: await write('') }, {}, /give --store or --config, not both/],
    ['relative store dir', { config: await write('storeDir: nix/store\n') }, {}, /field "storeDir"/],
    ['bad users', { config: await write('auth: { writeUsers: [a] }\n') }, {}, /field "auth.writeUsers"/],
    ['missing file', { config: join(dir, 'missing.yaml') }, {}, /cannot read configuration/],
  ]
  for (const [label, flags, env, message] of cases) await t.rejects(resolveServerConfig(flags, env), { code: 'BAD_CONFIG', message }, label)
})

t.test('durations, sizes and nested settings from every source', async (t) => {
  const dir = await tempDir(t)
  const file = join(dir, 'nixcas.yaml')
  await writeFile(file, 'root: memory://\nnarinfoMaxAge: 2h\nshutdownTimeout: 30s\nwindowBytes: 32MiB\npressure: { maxEventLoopDelay: 250ms, retryAfter: 5 }\nsigningKeys: [keys/a.key, /abs.key]\n')
  const { config, origins } = await resolveConfiguration({ config: file }, { NIXCAS_PRESSURE_RETRY_AFTER: '1m', NIXCAS_SIGNING_KEYS: '' })
  t.match(config, { narinfoMaxAge: 7200, shutdownTimeout: 30_000, windowBytes: 32 * 2 ** 20, pressure: { maxEventLoopDelay: 250, retryAfter: 60, maxRssBytes: 0 } })
  t.same(config.signingKeyFiles, [], 'an empty variable still overrides the file')
  t.same(origins.get('pressure.retryAfter'), { from: 'env', name: 'NIXCAS_PRESSURE_RETRY_AFTER' })
  t.same(origins.get('pressure.maxEventLoopDelay'), { from: 'file', file })
  const fromFile = await resolveServerConfig({ config: file }, {})
  t.same(fromFile.signingKeyFiles, [join(dir, 'keys/a.key'), '/abs.key'], 'key files in the file are relative to it')
  const fromFlag = await resolveServerConfig({ config: file, signingKey: ['b.key'] }, { NIXCAS_SIGNING_KEYS: 'c.key' })
  t.same(fromFlag.signingKeyFiles, [join(process.cwd(), 'b.key')], 'flags win, relative to the working directory')
})

t.test('a store URL from the environment stands alone, even beside a file', async (t) => {
  const dir = await tempDir(t)
  const file = join(dir, 'nixcas.yaml')
  await writeFile(file, 'stores: { m: { type: memory } }\nroot: m\npriority: 7\n')
  const config = await resolveServerConfig({}, { NIXCAS_CONFIG: file, NIXCAS_STORE: 'memory://' })
  t.same(config.stores, { stores: {}, root: 'memory://' })
  t.equal(config.priority, 7, 'the file still gives the other settings')
})

t.test('keys and stores are checked as serve checks them, touching no store', async (t) => {
  const dir = await tempDir(t)
  const key = generateSecretKey('test-1')
  await writeFile(join(dir, 'good.key'), formatSecretKey(key))
  await writeFile(join(dir, 'garbled.key'), 'test-1:bm90IGEga2V5')
  await writeFile(join(dir, 'public.key'), formatPublicKey(key.publicKey))
  const prepare = async (yaml: string): Promise<Awaited<ReturnType<typeof prepareServer>>> => {
    const file = join(dir, `c${Math.random()}.yaml`)
    await writeFile(file, `stores: { disk: { type: fs, path: never-made } }\nroot: disk\n${yaml}`)
    const prepared = await prepareServer(await resolveServerConfig({ config: file }, {}), { logger: silentLogger })
    t.teardown(() => prepared.stack.close())
    return prepared
  }
  const good = await prepare(`signingKeys: [good.key]\ntrustedUploadKeys: ['${formatPublicKey(key.publicKey)}']\nrequireUploadSignature: true\n`)
  t.same(good.keys.signingKeys.map((k) => k.name), ['test-1'])
  t.same(good.keys.trustedUploadKeys.map((k) => k.name), ['test-1'])
  t.equal(good.stack.root.name, 'disk')
  await t.rejects(access(join(dir, 'never-made')), { code: 'ENOENT' }, 'the fs store was not touched')
  const bad: [string, RegExp][] = [
    ['signingKeys: [missing.key]\n', /^configuration field "signingKeys\[0\]": signing key .*missing\.key: ENOENT/],
    ['signingKeys: [good.key, garbled.key]\n', /^configuration field "signingKeys\[1\]": signing key .*garbled\.key: secret key "test-1" must hold 64 bytes/],
    ['signingKeys: [public.key]\n', /^configuration field "signingKeys\[0\]": signing key .*public\.key/],
    ['trustedUploadKeys: [nonsense]\n', /^configuration field "trustedUploadKeys\[0\]": public key must look like/],
    ['requireUploadSignature: true\n', /^configuration field "requireUploadSignature": needs at least one key/],
  ]
  for (const [yaml, message] of bad) await t.rejects(prepare(yaml), { code: 'BAD_CONFIG', message }, yaml.trim())
  await t.rejects(prepareServer(await resolveServerConfig({ store: 'ftp://nowhere' }, {}), { logger: silentLogger }), { code: 'BAD_CONFIG', message: /unknown scheme "ftp"/ })
})

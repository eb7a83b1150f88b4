import { spawn } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { settings, settingsReference } from '../../src/config.ts'
import { leaves } from '../../src/config/setting.ts'
import { formatPublicKey, formatSecretKey, generateSecretKey } from '../../src/nix/signing.ts'
import { tempDir } from '../helpers/trees.ts'

const cli = new URL('../../src/cli.ts', import.meta.url).pathname
const readme = new URL('../../README.md', import.meta.url).pathname
const packageJson = new URL('../../package.json', import.meta.url).pathname

/** The environment of this process without any NIXCAS_ variable, plus `env`. */
function cleanEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  return { ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('NIXCAS_'))), ...env }
}

/**
 * Runs `nixcas …`; resolves once it exits. `until` sees the output so far and stops
 * the process with SIGTERM when it returns true (for a serve that started).
 */
function run(args: string[], env: Record<string, string> = {}, until?: (output: string) => boolean): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', cli, ...args], { env: cleanEnv(env) })
    let stdout = ''
    let stderr = ''
    let stopped = false
    const take = (): void => {
      if (!stopped && until?.(stdout + stderr)) {
        stopped = true
        child.kill('SIGTERM')
      }
    }
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString()
      take()
    })
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString()
      take()
    })
    child.on('error', reject)
    child.on('exit', (code) => resolve({ code, stdout, stderr }))
  })
}

t.test('--version prints the version of package.json', async (t) => {
  const { version } = JSON.parse(await readFile(packageJson, 'utf8')) as { version: string }
  const { code, stdout } = await run(['--version'])
  t.equal(code, 0)
  t.equal(stdout, `${version}\n`)
})

t.test('config docs documents every declared setting, and the README carries it', async (t) => {
  const { code, stdout } = await run(['config', 'docs'])
  t.equal(code, 0)
  t.equal(stdout, settingsReference(settings))
  for (const { path, setting } of leaves(settings)) {
    const { env, flag, doc } = setting.declaration
    const row = stdout.split('\n').find((line) => line.startsWith(`| \`${path}\` |`))
    t.ok(row, `${path} has a row`)
    t.ok(row?.includes(doc.replace(/\|/g, '\\|')), `${path}: its doc line`)
    if (env) t.ok(row?.includes(`\`${env}\``), `${path}: ${env}`)
    if (flag) t.ok(row?.includes(`\`${flag.split(' ')[0]}\``), `${path}: its flag`)
  }
  t.ok((await readFile(readme, 'utf8')).includes(stdout), 'README.md holds the current reference (refresh it: node --import tsx src/cli.ts config docs --write README.md)')
})

t.test('config check prints the effective settings, secrets redacted, and the store composition', async (t) => {
  const dir = await tempDir(t)
  const key = generateSecretKey('check-1')
  await writeFile(join(dir, 'secret.key'), formatSecretKey(key))
  await writeFile(
    join(dir, 'nixcas.yaml'),
    [
      'stores:',
      '  disk: { type: fs, path: data }',
      '  main: { type: retry, store: disk }',
      'root: main',
      'signingKeys: [secret.key]',
      `trustedUploadKeys: ['${formatPublicKey(key.publicKey)}']`,
      'auth: { writeTokens: [token-in-file], readUsers: { alice: password-in-file } }',
      'narinfoMaxAge: 2h',
      '',
    ].join('\n'),
  )
  const { code, stdout, stderr } = await run(['config', 'check', '--config', join(dir, 'nixcas.yaml')], { NIXCAS_PRIORITY: '7', NIXCAS_READ_TOKENS: 'token-in-env' })
  t.equal(code, 0, stderr)
  t.match(stdout, `configuration file: ${join(dir, 'nixcas.yaml')}`)
  t.match(stdout, /^ {2}priority +7 +NIXCAS_PRIORITY$/m, 'the environment wins over the default, and says so')
  t.match(stdout, /^ {2}narinfoMaxAge +2h +file$/m)
  t.match(stdout, /^ {2}auth\.writeTokens +\(1 redacted\) +file$/m)
  t.match(stdout, /^ {2}auth\.readUsers +alice:\*\*\* +file$/m)
  t.match(stdout, /^ {2}auth\.readTokens +\(1 redacted\) +NIXCAS_READ_TOKENS$/m)
  t.notMatch(stdout, /token-in-file|password-in-file|token-in-env/, 'no secret is printed')
  t.match(stdout, /^ {2}signingKeys +\/.*secret\.key +file$/m)
  t.match(stdout, /^signing keys: check-1$/m)
  t.match(stdout, /^trusted upload keys: check-1$/m)
  t.match(stdout, /^ {2}main \(root\): retry \{store=disk\}$/m)
  t.match(stdout, /^ {2}disk: fs \{path=data\}$/m)
  const given = ['root', 'stores', 'signingKeys', 'trustedUploadKeys', 'auth.writeTokens', 'auth.readUsers', 'auth.readTokens', 'narinfoMaxAge', 'priority']
  for (const { path, setting } of leaves(settings)) {
    const line = stdout.split('\n').find((text) => text.startsWith(`  ${path} `))
    t.ok(line, `${path} is listed`)
    if (given.includes(path)) continue
    const { kind, default: value } = setting.declaration
    const shown = value === undefined ? 'unset' : kind.format(value) || '(empty)'
    t.same(line?.trim().split(/ {2,}/), [path, shown, 'default'], `${path}: its default, ${shown}`)
  }

  const byUrl = await run(['config', 'check', '--store', 'memory://'])
  t.equal(byUrl.code, 0, byUrl.stderr)
  t.match(byUrl.stdout, /^configuration file: none$/m)
  t.match(byUrl.stdout, /^ {2}root +memory:\/\/ +--store$/m)
})

t.test('config check refuses exactly what serve refuses, with the same message', async (t) => {
  const dir = await tempDir(t)
  const file = async (name: string, text: string): Promise<string> => {
    await writeFile(join(dir, name), text)
    return join(dir, name)
  }
  const memory = 'stores: { m: { type: memory } }\nroot: m\n'
  const garbled = await file('garbled.key', 'cache-1:bm90IGEga2V5')
  const cases: [string, string[], Record<string, string>, RegExp][] = [
    ['a duration that is not one', ['--config', await file('age.yaml', `${memory}narinfoMaxAge: abc\n`)], {}, /field "narinfoMaxAge": expected a duration/],
    ['an unknown nested field', ['--config', await file('nested.yaml', `${memory}pressure: { maxEventLoopDelay: 1s, colour: red }\n`)], {}, /field "pressure\.colour": unknown field/],
    ['an unknown top-level field', ['--config', await file('top.yaml', `${memory}colour: red\n`)], {}, /field "colour": unknown field/],
    ['a missing signing key file', ['--store', 'memory://'], { NIXCAS_SIGNING_KEYS: join(dir, 'missing.key') }, /field "signingKeys\[0\]": signing key .*missing\.key: ENOENT/],
    ['a garbled signing key file', ['--config', await file('garbled.yaml', `${memory}signingKeys: [garbled.key]\n`)], {}, new RegExp(`field "signingKeys\\[0\\]": signing key ${garbled}: secret key "cache-1" must hold 64 bytes`)],
    ['a bad trusted key', ['--store', 'memory://'], { NIXCAS_TRUSTED_UPLOAD_KEYS: 'cache-1:abc' }, /field "trustedUploadKeys\[0\]": public key "cache-1" must hold 32 bytes/],
    ['upload signatures required without keys', ['--store', 'memory://'], { NIXCAS_REQUIRE_UPLOAD_SIGNATURE: 'true' }, /field "requireUploadSignature": needs at least one key/],
    ['a store that names no store', ['--config', await file('graph.yaml', 'stores:\n  a: { type: retry, store: b }\nroot: a\n')], {}, /store "a", field "store": no store named "b"/],
    ['a bad variable', ['--store', 'memory://'], { NIXCAS_LOG_LEVEL: 'loud' }, /field "logLevel": expected one of .* \(from NIXCAS_LOG_LEVEL\)/],
    ['both --store and --config', ['--store', 'memory://', '--config', await file('both.yaml', memory)], {}, /give --store or --config, not both/],
    ['a missing configuration file', ['--config', join(dir, 'nope.yaml')], {}, /cannot read configuration .*nope\.yaml/],
  ]
  for (const [label, args, env, message] of cases) {
    const [check, serve] = await Promise.all([run(['config', 'check', ...args], env), run(['serve', ...args], { ...env, NIXCAS_LISTEN: '127.0.0.1:0' })])
    t.equal(check.code, 1, `${label}: config check exits 1`)
    t.equal(serve.code, 1, `${label}: serve exits 1`)
    t.equal(check.stdout, '', `${label}: config check prints nothing but the error`)
    t.match(check.stderr, message, `${label}: the message names the field`)
    t.equal(check.stderr, serve.stderr, `${label}: the same message from both`)
  }
})

t.test('what config check accepts, serve starts with', async (t) => {
  const dir = await tempDir(t)
  const key = generateSecretKey('ok-1')
  await writeFile(join(dir, 'secret.key'), formatSecretKey(key))
  await writeFile(join(dir, 'ok.yaml'), `stores: { m: { type: memory } }\nroot: m\nsigningKeys: [secret.key]\nnarinfoMaxAge: 30d\npressure: { retryAfter: 1m }\n`)
  const args = ['--config', join(dir, 'ok.yaml')]
  const check = await run(['config', 'check', ...args])
  t.equal(check.code, 0, check.stderr)
  const serve = await run(['serve', ...args], { NIXCAS_LISTEN: '127.0.0.1:0' }, (output) => output.includes('Server listening'))
  t.match(serve.stdout, /signing narinfos/)
  t.match(serve.stdout, /Server listening/)
  t.equal(serve.code, 0, 'stopped cleanly')
})

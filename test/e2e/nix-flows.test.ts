import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import { buildApp } from '../../src/app.ts'
import type { ServerConfig } from '../../src/config.ts'
import { appOptionsFrom } from '../../src/server.ts'
import { testConfig } from '../helpers/app.ts'
import { buildCaDerivation, caNixEnv } from '../helpers/ca-derivation.ts'
import { buildClosure } from '../helpers/closure.ts'
import { silentLogger } from '../helpers/log.ts'
import { nix, nixEnv, skipWithoutNix } from '../helpers/nix.ts'
import { tempDir } from '../helpers/trees.ts'

const execFileAsync = promisify(execFile)

interface Served {
  url: string
  /** `METHOD path status` of every request answered so far. */
  requests: string[]
}

/** nixcas on a real socket, recording what it was asked. */
async function serve(t: Test, overrides: Partial<ServerConfig>): Promise<Served> {
  const app = await buildApp(await appOptionsFrom(await testConfig(overrides), silentLogger), { loggerInstance: silentLogger })
  const requests: string[] = []
  app.addHook('onResponse', async (request, reply) => {
    requests.push(`${request.method} ${request.url} ${reply.statusCode}`)
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  return { url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, requests }
}

/**
 * A Nix user of this machine: its own HOME and XDG_CACHE_HOME, shared by every command it
 * runs, so Nix's narinfo cache (binary-cache-v*.sqlite, 30 days for what it has seen or
 * uploaded) carries over from a push to a later pull, as it does for a real user. No
 * substituter unless a command names one.
 */
function nixUser(home: string, base: NodeJS.ProcessEnv = nixEnv): (command: string, args: string[]) => Promise<{ stdout: string; output: string }> {
  const env = { ...base, HOME: home, XDG_CACHE_HOME: join(home, '.cache'), NIX_CONFIG: `${base.NIX_CONFIG ?? ''}\nsubstituters =` }
  return async (command, args) => {
    const { stdout, stderr } = await execFileAsync(command, args, { env, maxBuffer: 64 * 1024 * 1024 }).catch((error: { stderr?: string; message: string }) => {
      throw new Error(`${command} ${args.join(' ')} failed: ${error.stderr ?? error.message}`)
    })
    return { stdout, output: `${stdout}${stderr}` }
  }
}

async function makeKey(dir: string, name: string): Promise<{ secretFile: string; publicKey: string }> {
  await nix('nix-store', ['--generate-binary-cache-key', name, join(dir, `${name}.secret`), join(dir, `${name}.public`)])
  return { secretFile: join(dir, `${name}.secret`), publicKey: (await readFile(join(dir, `${name}.public`), 'utf8')).trim() }
}

/** What Nix names a NAR it compressed each way: gzip has no suffix of its own. */
const SUFFIX: Record<string, string> = { xz: '.nar.xz', zstd: '.nar.zst', bzip2: '.nar.bz2', br: '.nar.br', gzip: '.nar' }

t.test('same machine, Nix’s own narinfo cache: push compressed, pull back with nix copy and nix-store -r', { skip: skipWithoutNix }, async (t) => {
  const dir = await tempDir(t)
  const serverKey = await makeKey(dir, 'nixcas-server-1')
  const clientKey = await makeKey(dir, 'nixcas-client-1')
  const server = await serve(t, { stores: { stores: {}, root: `file://${join(dir, 'cache')}` }, signingKeyFiles: [serverKey.secretFile] })
  const trusted = ['--option', 'trusted-public-keys', `${serverKey.publicKey} ${clientKey.publicKey}`, '--option', 'require-sigs', 'true']

  for (const compression of Object.keys(SUFFIX)) {
    await t.test(compression, async (t) => {
      const home = join(dir, `home-${compression}`)
      await mkdir(home, { recursive: true })
      const user = nixUser(home)
      const closure = await buildClosure(dir)
      await user('nix', ['copy', '--to', `${server.url}?compression=${compression}&secret-key=${clientKey.secretFile}`, closure.top])
      const uploaded = server.requests.filter((line) => line.startsWith('PUT /nar/') && line.includes(`${SUFFIX[compression]} 201`))
      t.equal(uploaded.length, closure.paths.length, `Nix uploaded ${SUFFIX[compression]} files`)

      // Nix answers from the narinfo it uploaded and fetches the file name it chose.
      const before = server.requests.length
      const store = join(dir, `pulled-${compression}`)
      await user('nix', ['copy', '--from', server.url, '--to', store, ...trusted, closure.top])
      const fetched = server.requests.slice(before).filter((line) => line.startsWith('GET /nar/'))
      t.same(fetched.map((line) => line.replace(/ \d+$/, '').endsWith(SUFFIX[compression] as string)), closure.paths.map(() => true), `the pull fetched ${SUFFIX[compression]} names: ${fetched.join(', ')}`)
      t.ok(fetched.every((line) => line.endsWith(' 200')))
      const verified = await user('nix', ['store', 'verify', '--store', store, ...trusted.slice(0, 3), '--recursive', '--sigs-needed', '1', closure.top])
      t.notMatch(verified.output, /untrusted|corrupt|error/i, 'nix store verify is satisfied')

      // With the paths gone from this machine's store, nix-store -r with nixcas as the only substituter.
      await user('nix-store', ['--delete', ...closure.paths])
      const afterDelete = server.requests.length
      await user('nix-store', ['-r', closure.top, '--option', 'substituters', server.url, ...trusted])
      t.ok(server.requests.slice(afterDelete).some((line) => line.startsWith('GET /nar/') && line.includes(SUFFIX[compression] as string)), 'substituted from the compressed names')
      t.notMatch((await user('nix-store', ['--verify-path', closure.top])).output, /error|not valid/i, 'valid again')
    })
  }
})

// A derivation that talks while it builds, so it has a log to copy.
const LOG_NIX = `{ seed }: derivation {
  name = "nixcas-logged"; system = builtins.currentSystem; builder = "/bin/sh";
  args = [ "-c" "echo building \${seed}; i=0; while [ $i -lt 200 ]; do echo compiling unit $i of 200; i=$((i+1)); done; echo done > $out" ];
}
`

t.test('build logs: nix store copy-log --to, then nix log and curl --compressed read them', { skip: skipWithoutNix }, async (t) => {
  const dir = await tempDir(t)
  const server = await serve(t, {})
  const user = nixUser(join(dir, 'home'))
  await writeFile(join(dir, 'logged.nix'), LOG_NIX)
  const seed = randomBytes(8).toString('hex')
  const out = (await user('nix-build', [join(dir, 'logged.nix'), '--no-out-link', '--argstr', 'seed', seed])).stdout.trim()
  const drv = (await user('nix-store', ['--query', '--deriver', out])).stdout.trim()
  const local = (await user('nix', ['log', drv])).stdout
  t.match(local, `building ${seed}`, 'Nix kept a log locally')

  await user('nix', ['store', 'copy-log', '--to', server.url, drv])
  t.ok(server.requests.includes(`PUT /log/${drv.slice('/nix/store/'.length)} 204`), 'Nix PUT the log')
  // Nix finds the log of an output through its narinfo's Deriver.
  await user('nix', ['copy', '--to', server.url, out])
  t.equal((await user('nix', ['log', '--store', server.url, out])).stdout.trim(), local.trim(), 'nix log --store reads it back')
  t.ok(server.requests.includes(`GET /log/${drv.slice('/nix/store/'.length)} 200`))
  const { stdout: viaCurl } = await execFileAsync('curl', ['--compressed', '--silent', '--fail', `${server.url}/log/${drv.slice('/nix/store/'.length)}`])
  t.equal(viaCurl.trim(), local.trim(), 'curl --compressed shows it')
  const { stdout: headers } = await execFileAsync('curl', ['--compressed', '--silent', '--fail', '--head', `${server.url}/log/${drv.slice('/nix/store/'.length)}`])
  t.match(headers, /content-encoding: br/i, 'sent as stored to a client that takes br')
})

t.test('content-addressed derivations: nix copy --to pushes paths and realisations; nix build --max-jobs 0 substitutes them', { skip: skipWithoutNix }, async (t) => {
  const dir = await tempDir(t)
  const serverKey = await makeKey(dir, 'nixcas-server-1')
  const clientKey = await makeKey(dir, 'nixcas-client-1')
  const server = await serve(t, { stores: { stores: {}, root: `file://${join(dir, 'cache')}` }, signingKeyFiles: [serverKey.secretFile] })
  const ca = await buildCaDerivation(dir, { secretKeyFile: clientKey.secretFile })
  const pusher = nixUser(join(dir, 'home-push'), caNixEnv())

  await pusher('nix', ['copy', '--to', server.url, ...ca.installable])
  const realisationPuts = server.requests.filter((line) => line.startsWith('PUT /realisations/'))
  t.same(realisationPuts.map((line) => line.endsWith(' 204')), [true, true], `both realisations accepted: ${realisationPuts.join(', ')}`)
  const pushed = server.requests.filter((line) => line.startsWith('PUT '))
  t.ok(pushed.findIndex((line) => line.startsWith('PUT /realisations/')) > pushed.findLastIndex((line) => line.includes('.narinfo ')), 'Nix 2.8 pushes the paths, then the realisations')

  // Only the server's key is trusted, and with a fresh narinfo cache, Nix must ask nixcas for everything.
  for (const [label, home] of [['a fresh narinfo cache', join(dir, 'home-fresh')], ['the pusher’s narinfo cache', join(dir, 'home-push')]] as const) {
    await t.test(label, async (t) => {
      const store = join(dir, `store-${randomBytes(4).toString('hex')}`)
      const puller = nixUser(home, caNixEnv())
      const before = server.requests.length
      const keys = label === 'a fresh narinfo cache' ? serverKey.publicKey : `${serverKey.publicKey} ${clientKey.publicKey}`
      const built = await puller('nix', ['build', '--max-jobs', '0', '--store', store, '--no-link', '--json', '--option', 'substituters', server.url, '--option', 'trusted-public-keys', keys, ...ca.installable])
      t.match(built.stdout, ca.top.slice('/nix/store/'.length), 'the content-addressed output arrived')
      const asked = server.requests.slice(before)
      if (label === 'a fresh narinfo cache') t.ok(asked.some((line) => /^GET \/realisations\/sha256:[0-9a-f]{64}!out\.doi 200$/.test(line)), `realisations read from nixcas: ${asked.join(', ')}`)
      t.ok(asked.some((line) => line.startsWith('GET /nar/') && line.endsWith(' 200')), 'NARs fetched')
      const info = await puller('nix', ['path-info', '--store', store, '--json', ca.top])
      t.match(info.stdout, ca.top, 'valid in the new store')
    })
  }
})

t.test('index-debug-info and write-nar-listing: the entries Nix writes resolve to the NAR it uploaded', { skip: skipWithoutNix }, async (t) => {
  const dir = await tempDir(t)
  const server = await serve(t, {})
  const user = nixUser(join(dir, 'home'))
  const buildId = randomBytes(20).toString('hex')
  const tree = join(dir, 'with-debug-info')
  await mkdir(join(tree, 'lib', 'debug', '.build-id', buildId.slice(0, 2)), { recursive: true })
  await writeFile(join(tree, 'lib', 'debug', '.build-id', buildId.slice(0, 2), `${buildId.slice(2)}.debug`), randomBytes(4096))
  const path = (await user('nix-store', ['--add', tree])).stdout.trim()

  await user('nix', ['copy', '--to', `${server.url}?index-debug-info=true&write-nar-listing=true`, path])
  const puts = server.requests.filter((line) => line.startsWith('PUT '))
  t.ok(puts.some((line) => line === `PUT /debuginfo/${buildId}.debug 204`), `debuginfo accepted: ${puts.join(', ')}`)
  t.ok(puts.some((line) => /^PUT \/[0-9a-z]{32}\.ls 204$/.test(line)), 'listing accepted')

  const entry = (await (await fetch(`${server.url}/debuginfo/${buildId}.debug`)).json()) as { archive: string; member: string }
  t.equal(entry.member, `lib/debug/.build-id/${buildId.slice(0, 2)}/${buildId.slice(2)}.debug`)
  t.match(entry.archive, /^\.\.\/nar\/[0-9a-z]{52}\.nar\.xz$/, 'it points at the .nar.xz Nix uploaded')
  const archive = await fetch(new URL(entry.archive, `${server.url}/debuginfo/`))
  t.equal(archive.status, 200, 'and that name is fetchable')
  await writeFile(join(dir, 'archive.nar.xz'), Buffer.from(await archive.arrayBuffer()))
  const { stdout: decoded } = await execFileAsync('xz', ['-d', '-c', join(dir, 'archive.nar.xz')], { encoding: 'buffer', maxBuffer: 1 << 30 })
  t.ok(decoded.equals(await nix('nix-store', ['--dump', path])), 'it decompresses to the NAR of the path')
})

import { execFile } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'
import { tempDir } from '../helpers/trees.ts'

/**
 * The cloud SDKs are large (@aws-sdk/client-s3 and @google-cloud/storage take longer to
 * load than the rest of the server): a server whose stores are all local must never load
 * them. Each case runs a real app in a child process whose module resolutions are all
 * recorded by a loader hook, so nothing this test process loaded can hide or fake one.
 */

const REPO = fileURLToPath(new URL('../..', import.meta.url))
const SDKS = ['@aws-sdk/', '@google-cloud/storage']

/** Records every resolved module URL, one a line, in the file named by RESOLVED_LOG. */
const HOOKS = `import { appendFileSync } from 'node:fs'
export async function resolve(specifier, context, next) {
  const result = await next(specifier, context)
  appendFileSync(process.env.RESOLVED_LOG, result.url + '\\n')
  return result
}
`
const REGISTER = (hooks: string): string => `import { register } from 'node:module'
register(${JSON.stringify(pathToFileURL(hooks).href)})
`

/** Builds the app on `store`, does what a client does, and closes it. */
const CHILD = (store: string): string => `
import { createHash } from 'node:crypto'
import { silentLogger as logger } from ${JSON.stringify(pathToFileURL(join(REPO, 'test/helpers/log.ts')).href)}
import { buildApp } from ${JSON.stringify(pathToFileURL(join(REPO, 'src/app.ts')).href)}
import { resolveServerConfig } from ${JSON.stringify(pathToFileURL(join(REPO, 'src/config.ts')).href)}
import { writeNar } from ${JSON.stringify(pathToFileURL(join(REPO, 'src/nix/nar-writer.ts')).href)}
import { encodeNixbase32 } from ${JSON.stringify(pathToFileURL(join(REPO, 'src/nix/nixbase32.ts')).href)}
import { appOptionsFrom } from ${JSON.stringify(pathToFileURL(join(REPO, 'src/server.ts')).href)}

const config = await resolveServerConfig({ store: ${JSON.stringify(store)} }, {})
const app = await buildApp(await appOptionsFrom(config, logger), { loggerInstance: logger })
const contents = Buffer.from('hello\\n')
const parts = []
for await (const part of writeNar([{ type: 'file', name: null, executable: false, size: contents.length }, { type: 'data', bytes: contents }])) parts.push(part)
const nar = Buffer.concat(parts)
const narHash = encodeNixbase32(createHash('sha256').update(nar).digest())
const hash = '0'.repeat(31) + '1'
const narinfo = 'StorePath: /nix/store/' + hash + '-hello\\nURL: nar/' + narHash + '.nar\\nCompression: none\\nNarHash: sha256:' + narHash + '\\nNarSize: ' + nar.length + '\\nReferences: \\n'
const statuses = []
for (const request of [
  { method: 'PUT', url: '/nar/' + narHash + '.nar', payload: nar },
  { method: 'PUT', url: '/' + hash + '.narinfo', payload: narinfo },
  { method: 'GET', url: '/' + hash + '.narinfo' },
  { method: 'GET', url: '/nar/' + narHash + '.nar' },
]) statuses.push((await app.inject(request)).statusCode)
await app.close()
process.stdout.write(JSON.stringify(statuses))
`

async function loadedWith(t: Parameters<typeof tempDir>[0], store: string): Promise<{ statuses: number[]; sdks: string[] }> {
  const dir = await tempDir(t)
  const [hooks, register, child, log] = ['hooks.mjs', 'register.mjs', 'child.mts', 'resolved.log'].map((name) => join(dir, name)) as [string, string, string, string]
  await writeFile(hooks, HOOKS)
  await writeFile(register, REGISTER(hooks))
  await writeFile(child, CHILD(store))
  await writeFile(log, '')
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--import', pathToFileURL(register).href, child], {
    cwd: REPO,
    env: { ...process.env, RESOLVED_LOG: log },
    timeout: 120_000,
  })
  const resolved = (await readFile(log, 'utf8')).split('\n')
  return { statuses: JSON.parse(stdout) as number[], sdks: resolved.filter((url) => SDKS.some((sdk) => url.includes(`/node_modules/${sdk}`))) }
}

t.test('an fs store loads no cloud SDK, through pushes and downloads', async (t) => {
  const dir = await tempDir(t)
  const { statuses, sdks } = await loadedWith(t, `file://${dir}/store`)
  t.same(statuses, [201, 204, 200, 200], 'the push and the downloads worked')
  t.same(sdks, [], 'no SDK module was resolved')
})

t.test('an S3 store loads the S3 SDK (the recording sees SDKs when they load)', async (t) => {
  // Nothing listens on port 9: every request fails, after the SDK has loaded.
  const { sdks } = await loadedWith(t, 's3://bucket?endpoint=http://127.0.0.1:9&forcePathStyle=true&region=us-east-1&accessKeyId=a&secretAccessKey=b')
  t.ok(sdks.some((url) => url.includes('/@aws-sdk/client-s3/')), 'client-s3 was resolved')
  t.notOk(sdks.some((url) => url.includes('/@google-cloud/storage/')), 'the GCS SDK was not')
})

t.test('a GCS store loads the GCS SDK and not the S3 one', async (t) => {
  const { sdks } = await loadedWith(t, 'gs://bucket?apiEndpoint=http://127.0.0.1:9&project=demo-test')
  t.ok(sdks.some((url) => url.includes('/@google-cloud/storage/')), '@google-cloud/storage was resolved')
  t.notOk(sdks.some((url) => url.includes('/@aws-sdk/')), 'no AWS SDK module was')
})

import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { parsePublicKey, parseSecretKey } from '../../src/nix/signing.ts'
import { narOf } from '../helpers/nar-samples.ts'
import { makeGoldenTrees, tempDir } from '../helpers/trees.ts'

const execFileAsync = promisify(execFile)
const cli = new URL('../../src/cli.ts', import.meta.url).pathname

function nixcas(args: string[], input?: Buffer): Promise<{ stdout: string; code: number }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, ['--import', 'tsx', cli, ...args], { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ stdout: Buffer.concat([stdout, stderr]).toString(), code: error ? Number(error.code ?? 1) : 0 })
    })
    child.stdin?.end(input)
  })
}

t.test('keygen writes a Nix key pair', async (t) => {
  const dir = await tempDir(t)
  const { code } = await nixcas(['keygen', 'cache.test-1', join(dir, 'secret'), join(dir, 'public')])
  t.equal(code, 0)
  const secret = parseSecretKey(await readFile(join(dir, 'secret'), 'utf8'))
  t.equal(parsePublicKey(await readFile(join(dir, 'public'), 'utf8')).name, 'cache.test-1')
  t.equal(secret.name, 'cache.test-1')
  t.equal((await nixcas(['keygen', 'cache.test-1', join(dir, 'secret'), join(dir, 'public')])).code, 1, 'never overwrites a key')
})

t.test('nar dump, hash and check', async (t) => {
  const trees = await makeGoldenTrees(await tempDir(t))
  const expected = await narOf(trees.mixed as string)
  const { stdout } = await execFileAsync(process.execPath, ['--import', 'tsx', cli, 'nar', 'dump', trees.mixed as string], { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 })
  t.ok(stdout.equals(expected.bytes), 'dump writes the NAR')
  t.equal((await nixcas(['nar', 'hash', trees.mixed as string])).stdout.trim(), expected.hash)
  const good = await nixcas(['nar', 'check'], expected.bytes)
  t.match(good.stdout, new RegExp(`ok: ${expected.bytes.length} bytes, sha256:${expected.hash}`))
  const bad = await nixcas(['nar', 'check'], expected.bytes.subarray(0, 100))
  t.equal(bad.code, 1)
  t.match(bad.stdout, /malformed NAR at byte \d+/)
})

import { execFile } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { Test } from 'tap'
import { buildApp, type AppOptions } from '../../src/app.ts'
import type { ServerConfig } from '../../src/config.ts'
import { appOptionsFrom } from '../../src/server.ts'
import { testConfig } from './app.ts'
import type { Closure } from './closure.ts'
import { silentLogger } from './log.ts'
import { nix, nixEnv } from './nix.ts'

const execFileAsync = promisify(execFile)

/** nixcas on a real socket, as Nix reaches it, and the services it runs on; closed when the test ends. */
export async function serve(
  t: { teardown: (fn: () => Promise<void>) => void },
  overrides: Partial<ServerConfig>,
  logger: Logger = silentLogger,
): Promise<{ app: FastifyInstance; url: string; options: AppOptions }> {
  const config = await testConfig(overrides)
  const options = await appOptionsFrom(config, logger)
  const app = await buildApp(options, { loggerInstance: logger })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  return { app, url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, options }
}

/**
 * Runs the Nix client with its own narinfo cache directory, so a pull never sees what
 * the push told Nix's local cache, and with no other substituter.
 */
export async function nixClient(dir: string, args: string[]): Promise<string> {
  const env = { ...nixEnv, XDG_CACHE_HOME: join(dir, `xdg-${randomUUID()}`), NIX_CONFIG: `${nixEnv.NIX_CONFIG}\nsubstituters =` }
  const { stdout, stderr } = await execFileAsync('nix', args, { env, maxBuffer: 64 * 1024 * 1024 }).catch((error: { stderr?: string; message: string }) => {
    throw new Error(`nix ${args.join(' ')} failed: ${error.stderr ?? error.message}`)
  })
  return `${stdout}${stderr}`
}

export interface Keys {
  secretFile: string
  publicKey: string
}

/** A Nix signing key pair made by nix-store itself, in `dir`. */
export async function makeKeys(dir: string, name = 'nixcas-e2e-1'): Promise<Keys> {
  const secretFile = join(dir, `${name}.secret`)
  const publicFile = join(dir, `${name}.public`)
  await nix('nix-store', ['--generate-binary-cache-key', name, secretFile, publicFile])
  return { secretFile, publicKey: (await readFile(publicFile, 'utf8')).trim() }
}

/** Pulls `closure` into a fresh local store with signatures required, verifies it, compares NARs. */
export async function pullAndCheck(t: Test, dir: string, url: string, keys: Keys, closure: Closure): Promise<void> {
  const store = join(dir, `pulled-${randomUUID()}`)
  await nixClient(dir, ['copy', '--from', url, '--to', store, '--option', 'trusted-public-keys', keys.publicKey, '--option', 'require-sigs', 'true', closure.top])
  const verified = await nixClient(dir, ['store', 'verify', '--store', store, '--option', 'trusted-public-keys', keys.publicKey, '--recursive', '--sigs-needed', '1', closure.top])
  t.notMatch(verified, /untrusted|corrupt|error/i, 'nix store verify is satisfied')
  for (const path of closure.paths) {
    const expected = await nix('nix-store', ['--dump', path])
    const info = await (await fetch(`${url}/${path.slice('/nix/store/'.length, '/nix/store/'.length + 32)}.narinfo`)).text()
    const narUrl = /^URL: (.*)$/m.exec(info)?.[1]
    const served = Buffer.from(await (await fetch(`${url}/${narUrl ?? 'missing'}`)).arrayBuffer())
    t.ok(served.equals(expected), `${path}: served NAR is identical to nix-store --dump`)
  }
}

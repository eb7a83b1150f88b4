#!/usr/bin/env node
import { createHash } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { pipeline } from 'node:stream/promises'
import { Readable } from 'node:stream'
import { Command } from 'commander'
import { pino } from 'pino'
import { effectiveSettings, packageVersion, prepareServer, resolveConfiguration, resolveServerConfig, settings, settingsReference, type ServeFlags } from './config.ts'
import { withReference } from './config/docs.ts'
import { addLifecycleCommands } from './cli/lifecycle.ts'
import { leaves } from './config/setting.ts'
import { dumpPath } from './fs/dump-path.ts'
import { readNar } from './nix/nar-reader.ts'
import { writeNar } from './nix/nar-writer.ts'
import { encodeNixbase32 } from './nix/nixbase32.ts'
import { formatPublicKey, formatSecretKey, generateSecretKey } from './nix/signing.ts'

const program = new Command()
  .name('nixcas')
  .description('An HTTP Nix binary cache backed by chunked, content-addressed storage')
  .version(packageVersion())
  .showHelpAfterError()

const CONFIG_FLAG = ['--config <file>', 'YAML or JSON configuration [env NIXCAS_CONFIG]'] as const

const serve = program
  .command('serve')
  .description('serve a binary cache over HTTP (default: 127.0.0.1:5000, an fs store under ./data)')
  .option(...CONFIG_FLAG)
  .action(async (flags: ServeFlags) => {
    const config = await resolveServerConfig(flags)
    // Loaded here, so that --version and the config commands need none of the server's modules.
    if (config.workers > 1) return (await import('./workers.ts')).serveWorkers(config)
    const { startServer } = await import('./server.ts')
    await startServer(config)
  })
// The flags of serve come from the settings table; see `nixcas config docs`.
for (const { setting } of leaves(settings)) {
  const { flag, doc, env, kind } = setting.declaration
  if (flag === undefined) continue
  const help = `${doc}${kind.repeatable ? ' Repeatable.' : ''}${env === undefined ? '' : ` [env ${env}]`}`
  if (kind.repeatable) serve.option(flag, help, (value: string, values: string[] = []) => [...values, value])
  else serve.option(flag, help)
}

program
  .command('keygen')
  .description('write a Nix signing key pair (the same format as nix-store --generate-binary-cache-key)')
  .argument('<name>', 'key name, e.g. cache.example.org-1')
  .argument('<secret-file>', 'where to write the secret key')
  .argument('<public-file>', 'where to write the public key')
  .action(async (name: string, secretFile: string, publicFile: string) => {
    const key = generateSecretKey(name)
    await writeFile(secretFile, formatSecretKey(key), { mode: 0o600, flag: 'wx' })
    await writeFile(publicFile, formatPublicKey(key.publicKey), { flag: 'wx' })
  })

addLifecycleCommands(program)

const nar = program.command('nar').description('work with NAR archives')

nar
  .command('dump')
  .description('write the NAR of a path to standard output, like nix-store --dump')
  .argument('<path>')
  .action(async (path: string) => {
    await pipeline(Readable.from(writeNar(dumpPath(path))), process.stdout)
  })

nar
  .command('hash')
  .description('print the sha256 of the NAR of a path in nixbase32, like nix hash path --base32')
  .argument('<path>')
  .action(async (path: string) => {
    const hash = createHash('sha256')
    for await (const chunk of writeNar(dumpPath(path))) hash.update(chunk)
    process.stdout.write(`${encodeNixbase32(hash.digest())}\n`)
  })

nar
  .command('check')
  .description('read a NAR from standard input and report whether it is canonical')
  .action(async () => {
    const hash = createHash('sha256')
    let size = 0
    async function* counted(): AsyncGenerator<Uint8Array> {
      for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
        hash.update(chunk)
        size += chunk.length
        yield chunk
      }
    }
    for await (const event of readNar(counted())) void event
    process.stdout.write(`ok: ${size} bytes, sha256:${encodeNixbase32(hash.digest())}\n`)
  })

const config = program.command('config').description('check the configuration, print its reference')

config
  .command('check')
  .description('resolve the configuration as serve does, check keys and the store composition without touching any store, and print them')
  .option(...CONFIG_FLAG)
  .option('--store <url>', 'a store URL instead of a file [env NIXCAS_STORE]')
  .action(async (flags: ServeFlags) => {
    const { config: resolved, values, origins, file } = await resolveConfiguration(flags)
    const { keys, stack } = await prepareServer(resolved, { logger: pino({ level: 'warn' }, pino.destination(2)) })
    try {
      const lines = [
        `configuration file: ${file ?? 'none'}`,
        '',
        'settings:',
        ...effectiveSettings(settings, values, origins).map((line) => `  ${line}`),
        '',
        `signing keys: ${keys.signingKeys.map((key) => key.name).join(', ') || 'none'}`,
        `trusted upload keys: ${keys.trustedUploadKeys.map((key) => key.name).join(', ') || 'none'}`,
        '',
        `store composition (root ${stack.root.name}):`,
        ...stack.describe().map((line) => `  ${line}`),
      ]
      process.stdout.write(`${lines.join('\n')}\n`)
    } finally {
      await stack.close()
    }
  })

config
  .command('docs')
  .description('print the reference of every setting, in markdown')
  .option('--write <file>', 'instead, replace the reference between the markers in FILE (README.md)')
  .action(async (options: { write?: string }) => {
    if (options.write === undefined) return void process.stdout.write(settingsReference(settings))
    await writeFile(options.write, withReference(await readFile(options.write, 'utf8'), settingsReference(settings), options.write))
  })

program.parseAsync().catch((error: unknown) => {
  process.stderr.write(`nixcas: ${error instanceof Error ? error.message : String(error)}\n`)
  process.exitCode = 1
})

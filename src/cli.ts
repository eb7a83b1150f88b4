#!/usr/bin/env node
import { createHash } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { pipeline } from 'node:stream/promises'
import { Readable } from 'node:stream'
import { Command } from 'commander'
import { dirname } from 'node:path'
import { pino } from 'pino'
import { DEFAULT_CONFIG_FILE, readConfigFile, resolveServerConfig, storeConfigOf, type ServeFlags } from './config.ts'
import { startServer } from './server.ts'
import { dumpPath } from './fs/dump-path.ts'
import { composeStores, type StoreStack } from './stores/compose.ts'
import { readNar } from './nix/nar-reader.ts'
import { writeNar } from './nix/nar-writer.ts'
import { encodeNixbase32 } from './nix/nixbase32.ts'
import { formatPublicKey, formatSecretKey, generateSecretKey } from './nix/signing.ts'

async function loadStores(options: { config?: string; store?: string }): Promise<StoreStack> {
  const logger = pino({ level: 'warn' }, pino.destination(2))
  if (options.store !== undefined) return composeStores({ stores: {}, root: options.store }, { logger })
  const file = options.config ?? DEFAULT_CONFIG_FILE
  return composeStores(storeConfigOf(await readConfigFile(file), file), { logger, baseDir: dirname(file) })
}

const program = new Command()
  .name('nixcas')
  .description('An HTTP Nix binary cache backed by chunked, content-addressed storage')
  .showHelpAfterError()

program
  .command('serve')
  .description('serve a binary cache over HTTP (default: 127.0.0.1:5000, an fs store under ./data)')
  .option('--listen <host:port>', 'where to listen [env NIXCAS_LISTEN]')
  .option('--store <url>', 'a store URL: file://…, s3://…, gs://…, memory:// [env NIXCAS_STORE]')
  .option('--config <file>', 'YAML or JSON configuration [env NIXCAS_CONFIG]')
  .option('--signing-key <file>', 'Nix secret key file to sign narinfos with; repeatable [env NIXCAS_SIGNING_KEYS, comma-separated]', (file: string, files: string[] = []) => [...files, file])
  .option('--priority <n>', 'Priority in nix-cache-info [env NIXCAS_PRIORITY]')
  .action(async (flags: ServeFlags) => {
    if (flags.store !== undefined && flags.config !== undefined) throw new Error('give --store or --config, not both')
    await startServer(await resolveServerConfig(flags))
  })

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

program
  .command('config')
  .description('check a store configuration')
  .command('check')
  .description('build the store composition from a config file or URL and print it, without touching any store')
  .option('--config <file>', 'YAML or JSON configuration')
  .option('--store <url>', 'a store URL instead of a file')
  .action(async (options: { config?: string; store?: string }) => {
    const stack = await loadStores(options)
    process.stdout.write(`${stack.describe().join('\n')}\n`)
    await stack.close()
  })

program.parseAsync().catch((error: unknown) => {
  process.stderr.write(`nixcas: ${error instanceof Error ? error.message : String(error)}\n`)
  process.exitCode = 1
})

import { dirname, resolve } from 'node:path'
import { NixcasError } from '../errors.ts'
import type { StoreConfig } from '../stores/compose.ts'
import { readConfigFile } from './file.ts'
import type { ListenAddress, Origin } from './kinds.ts'
import { DEFAULT_CONFIG_FILE } from './paths.ts'
import { givenOutsideFile, resolveSettings } from './resolve.ts'
import type { ValuesOf } from './setting.ts'
import { settings } from './settings.ts'

export type SettingValues = ValuesOf<typeof settings>

/**
 * Everything `nixcas serve` runs with: every setting of the table under its own name,
 * except `listen` (as host and port), `signingKeys` (as signingKeyFiles) and
 * `stores`/`root` (together, as `stores`).
 */
export interface ServerConfig extends Omit<SettingValues, 'listen' | 'signingKeys' | 'stores' | 'root'>, ListenAddress {
  signingKeyFiles: string[]
  stores: StoreConfig
  /** Where relative paths in the store configuration start. */
  baseDir: string
}

/**
 * Options of `nixcas serve` (and of `config check`, which has only the selection ones):
 * `--config` picks the file, the others are the table's flags by commander property name.
 */
export type ServeFlags = { config?: string; store?: string } & Readonly<Record<string, string | string[] | undefined>>

/** A resolved configuration with where each setting came from, for `config check`. */
export interface ResolvedConfiguration {
  config: ServerConfig
  values: SettingValues
  origins: Map<string, Origin>
  /** The configuration file read, if any. */
  file: string | undefined
}

/**
 * Merges defaults, the configuration file, the environment (NIXCAS_*) and flags, in
 * that order of precedence. Without `--config`/NIXCAS_CONFIG the shipped default file
 * is read, unless a store URL is given, which then stands alone.
 */
export async function resolveConfiguration(flags: ServeFlags, env: Readonly<Record<string, string | undefined>> = process.env): Promise<ResolvedConfiguration> {
  if (flags.store !== undefined && flags.config !== undefined) throw new NixcasError('BAD_CONFIG', 'give --store or --config, not both')
  const storeUrlGiven = givenOutsideFile(settings.root, { env, flags })
  const configFile = flags.config ?? env.NIXCAS_CONFIG
  const file = configFile !== undefined ? resolve(configFile) : storeUrlGiven ? undefined : DEFAULT_CONFIG_FILE
  const document = file === undefined ? {} : await readConfigFile(file)
  const workDir = process.cwd()
  const fileDir = file === undefined ? workDir : dirname(file)
  const { values, origins } = resolveSettings(settings, { document, file, fileDir, workDir, env, flags })
  const { listen, signingKeys, stores, root, ...rest } = values
  const config: ServerConfig = {
    ...rest,
    ...listen,
    signingKeyFiles: signingKeys,
    stores: { stores: storeUrlGiven ? {} : stores, root },
    baseDir: fileDir,
  }
  return { config, values, origins, file }
}

export async function resolveServerConfig(flags: ServeFlags, env: Readonly<Record<string, string | undefined>> = process.env): Promise<ServerConfig> {
  return (await resolveConfiguration(flags, env)).config
}

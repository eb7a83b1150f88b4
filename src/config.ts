import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { dirname, extname } from 'node:path'
import { parseDocument } from 'yaml'
import { NixcasError } from './errors.ts'
import { parseSize } from './units.ts'
import type { StoreConfig } from './stores/compose.ts'

/** Reads a YAML (or JSON) configuration file into a plain mapping. */
export async function readConfigFile(path: string): Promise<Record<string, unknown>> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (cause) {
    throw new NixcasError('BAD_CONFIG', `cannot read configuration ${path}: ${(cause as Error).message}`, { cause })
  }
  return parseConfigText(text, path)
}

export function parseConfigText(text: string, source: string): Record<string, unknown> {
  let value: unknown
  if (extname(source) === '.json') {
    try {
      value = JSON.parse(text)
    } catch (cause) {
      throw new NixcasError('BAD_CONFIG', `${source}: ${(cause as Error).message}`, { cause })
    }
  } else {
    const document = parseDocument(text, { prettyErrors: true, uniqueKeys: true })
    const error = document.errors[0]
    if (error) throw new NixcasError('BAD_CONFIG', `${source}: ${error.message}`, { cause: error })
    value = document.toJS()
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new NixcasError('BAD_CONFIG', `${source}: expected a mapping at the top level`)
  return value as Record<string, unknown>
}

/** The store part of a configuration: `stores` (named instances) and `root`. */
export function storeConfigOf(document: Record<string, unknown>, source: string): StoreConfig {
  const { stores = {}, root } = document
  if (!stores || typeof stores !== 'object' || Array.isArray(stores)) throw new NixcasError('BAD_CONFIG', `${source}: "stores" must be a mapping of named store instances`)
  if (root === undefined) throw new NixcasError('BAD_CONFIG', `${source}: "root" must name the store that serves requests`)
  return { stores: stores as StoreConfig['stores'], root: root as StoreConfig['root'] }
}

/** Everything `nixcas serve` runs with, after file, environment and flags are merged. */
export interface ServerConfig {
  host: string
  port: number
  storeDir: string
  priority: number
  stores: StoreConfig
  /** Where relative paths in the store configuration start. */
  baseDir: string
  signingKeyFiles: string[]
  /** Public keys (`name:base64`) an uploaded narinfo must be signed by, when `requireUploadSignature`. */
  trustedUploadKeys: string[]
  requireUploadSignature: boolean
  auth: {
    writeTokens: string[]
    writeUsers: Record<string, string>
    readTokens: string[]
    readUsers: Record<string, string>
  }
  narinfoMaxAge: number
  notFoundMaxAge: number
  windowBytes: number
  maxRequests: number
  maxNarSize: number | undefined
  uploadBytesInFlight: number
  /** All uploads together, and all NAR windows together. */
  totalUploadBytes: number
  totalWindowBytes: number
  narinfoCacheEntries: number
  compressNars: boolean
  pressure: { maxEventLoopDelay: number; maxHeapUsedBytes: number; maxRssBytes: number; retryAfter: number }
  shutdownTimeout: number
  logLevel: string
}

/** config/default.yaml of this checkout, from src/ (tsx) or dist/src/ (built). */
export const DEFAULT_CONFIG_FILE = fileURLToPath(new URL(import.meta.url.includes('/dist/') ? '../../config/default.yaml' : '../config/default.yaml', import.meta.url))

/** Command-line flags of `nixcas serve`; each has an environment variable too. */
export interface ServeFlags {
  listen?: string
  store?: string
  config?: string
  signingKey?: string[]
  priority?: string
}

const bad = (field: string, message: string): NixcasError => new NixcasError('BAD_CONFIG', `configuration field "${field}": ${message}`)

function integer(field: string, value: unknown, min = 0): number {
  const number = typeof value === 'string' && /^\d+$/.test(value.trim()) ? Number(value) : value
  if (typeof number !== 'number' || !Number.isSafeInteger(number) || number < min) throw bad(field, `expected an integer of at least ${min}, got ${JSON.stringify(value)}`)
  return number
}

function size(field: string, value: unknown, min = 0): number {
  if (typeof value === 'string') {
    const bytes = parseSize(value)
    if (bytes === undefined) throw bad(field, `expected a size such as 64MiB, got ${JSON.stringify(value)}`)
    return integer(field, bytes, min)
  }
  return integer(field, value, min)
}

function text(field: string, value: unknown): string {
  if (typeof value === 'string' && value.length > 0) return value
  if (typeof value === 'number') return String(value)
  throw bad(field, `expected a string, got ${JSON.stringify(value)}`)
}

function boolean(field: string, value: unknown): boolean {
  if (typeof value === 'boolean') return value
  if (value === 'true' || value === '1') return true
  if (value === 'false' || value === '0') return false
  throw bad(field, `expected true or false, got ${JSON.stringify(value)}`)
}

function stringList(field: string, value: unknown): string[] {
  if (typeof value === 'string') return value.split(',').map((item) => item.trim()).filter((item) => item.length > 0)
  if (Array.isArray(value) && value.every((item) => typeof item === 'string' && item.length > 0)) return value as string[]
  throw bad(field, 'expected a list of strings')
}

function users(field: string, value: unknown): Record<string, string> {
  if (typeof value === 'string') {
    return Object.fromEntries(
      stringList(field, value).map((pair) => {
        const colon = pair.indexOf(':')
        if (colon <= 0) throw bad(field, 'expected user:password pairs')
        return [pair.slice(0, colon), pair.slice(colon + 1)]
      }),
    )
  }
  if (value && typeof value === 'object' && !Array.isArray(value) && Object.values(value).every((password) => typeof password === 'string' && password.length > 0)) {
    return value as Record<string, string>
  }
  throw bad(field, 'expected a mapping of user names to passwords')
}

/** `HOST:PORT`, `:PORT`, `PORT` or `[IPv6]:PORT`. */
export function parseListen(value: string): { host: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):?(\d{1,5})$/.exec(value.trim())
  const port = Number(match?.[3])
  if (!match || port > 65535) throw bad('listen', `expected HOST:PORT, got ${JSON.stringify(value)}`)
  return { host: match[1] ?? (match[2] || '127.0.0.1'), port }
}

const KNOWN_FIELDS = new Set([
  'listen', 'storeDir', 'priority', 'stores', 'root', 'signingKeys', 'trustedUploadKeys', 'requireUploadSignature', 'auth',
  'narinfoMaxAge', 'notFoundMaxAge', 'windowBytes', 'maxRequests', 'maxNarSize', 'uploadBytesInFlight', 'narinfoCacheEntries',
  'compressNars', 'pressure', 'shutdownTimeout', 'logLevel', 'totalUploadBytes', 'totalWindowBytes',
])

/**
 * Merges defaults, the configuration file, the environment (NIXCAS_*) and flags, in
 * that order of precedence, refusing any bad value with the field that holds it.
 */
export async function resolveServerConfig(flags: ServeFlags, env: NodeJS.ProcessEnv = process.env): Promise<ServerConfig> {
  const store = flags.store ?? env.NIXCAS_STORE
  const file = flags.config ?? env.NIXCAS_CONFIG ?? (store === undefined ? DEFAULT_CONFIG_FILE : undefined)
  const document = file === undefined ? {} : await readConfigFile(file)
  for (const field of Object.keys(document)) if (!KNOWN_FIELDS.has(field)) throw bad(field, `unknown field in ${file}`)
  const pick = (field: string, envName: string): unknown => env[envName] ?? document[field]
  const auth = (document.auth ?? {}) as Record<string, unknown>
  const pressure = (document.pressure ?? {}) as Record<string, unknown>
  const storeDir = text('storeDir', document.storeDir ?? '/nix/store')
  if (!storeDir.startsWith('/')) throw bad('storeDir', 'must be an absolute path')

  const listen = parseListen(text('listen', flags.listen ?? pick('listen', 'NIXCAS_LISTEN') ?? '127.0.0.1:5000'))
  const maxNarSize = pick('maxNarSize', 'NIXCAS_MAX_NAR_SIZE')
  return {
    ...listen,
    storeDir,
    priority: integer('priority', flags.priority ?? pick('priority', 'NIXCAS_PRIORITY') ?? 40),
    stores: store !== undefined ? { stores: {}, root: store } : storeConfigOf(document, file ?? 'configuration'),
    baseDir: file === undefined ? process.cwd() : dirname(file),
    signingKeyFiles: flags.signingKey?.length ? flags.signingKey : stringList('signingKeys', pick('signingKeys', 'NIXCAS_SIGNING_KEYS') ?? []),
    trustedUploadKeys: stringList('trustedUploadKeys', pick('trustedUploadKeys', 'NIXCAS_TRUSTED_UPLOAD_KEYS') ?? []),
    requireUploadSignature: boolean('requireUploadSignature', pick('requireUploadSignature', 'NIXCAS_REQUIRE_UPLOAD_SIGNATURE') ?? false),
    auth: {
      writeTokens: stringList('auth.writeTokens', env.NIXCAS_WRITE_TOKENS ?? auth.writeTokens ?? []),
      writeUsers: users('auth.writeUsers', env.NIXCAS_WRITE_USERS ?? auth.writeUsers ?? {}),
      readTokens: stringList('auth.readTokens', env.NIXCAS_READ_TOKENS ?? auth.readTokens ?? []),
      readUsers: users('auth.readUsers', env.NIXCAS_READ_USERS ?? auth.readUsers ?? {}),
    },
    narinfoMaxAge: integer('narinfoMaxAge', pick('narinfoMaxAge', 'NIXCAS_NARINFO_MAX_AGE') ?? 3600),
    notFoundMaxAge: integer('notFoundMaxAge', pick('notFoundMaxAge', 'NIXCAS_NOT_FOUND_MAX_AGE') ?? 60),
    windowBytes: size('windowBytes', pick('windowBytes', 'NIXCAS_WINDOW_BYTES') ?? 16 * 2 ** 20, 1024 * 1024),
    maxRequests: integer('maxRequests', pick('maxRequests', 'NIXCAS_MAX_REQUESTS') ?? 32, 1),
    maxNarSize: maxNarSize === undefined ? undefined : size('maxNarSize', maxNarSize, 1),
    uploadBytesInFlight: size('uploadBytesInFlight', pick('uploadBytesInFlight', 'NIXCAS_UPLOAD_BYTES_IN_FLIGHT') ?? 64 * 2 ** 20, 1024 * 1024),
    totalUploadBytes: size('totalUploadBytes', pick('totalUploadBytes', 'NIXCAS_TOTAL_UPLOAD_BYTES') ?? 256 * 2 ** 20, 1024 * 1024),
    totalWindowBytes: size('totalWindowBytes', pick('totalWindowBytes', 'NIXCAS_TOTAL_WINDOW_BYTES') ?? 512 * 2 ** 20, 1024 * 1024),
    narinfoCacheEntries: integer('narinfoCacheEntries', pick('narinfoCacheEntries', 'NIXCAS_NARINFO_CACHE_ENTRIES') ?? 100_000, 0),
    compressNars: boolean('compressNars', pick('compressNars', 'NIXCAS_COMPRESS_NARS') ?? true),
    pressure: {
      maxEventLoopDelay: integer('pressure.maxEventLoopDelay', pressure.maxEventLoopDelay ?? 1000),
      maxHeapUsedBytes: size('pressure.maxHeapUsedBytes', pressure.maxHeapUsedBytes ?? 0),
      maxRssBytes: size('pressure.maxRssBytes', pressure.maxRssBytes ?? 0),
      retryAfter: integer('pressure.retryAfter', pressure.retryAfter ?? 10, 1),
    },
    shutdownTimeout: integer('shutdownTimeout', pick('shutdownTimeout', 'NIXCAS_SHUTDOWN_TIMEOUT') ?? 10_000),
    logLevel: text('logLevel', pick('logLevel', 'NIXCAS_LOG_LEVEL') ?? 'info'),
  }
}

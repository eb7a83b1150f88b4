import { isAbsolute, resolve } from 'node:path'
import { formatDuration, formatSize, parseDuration, parseSize } from '../units.ts'
import { NixcasError } from '../errors.ts'

/** Where a value came from: its precedence, and what an error message points at. */
export type Origin = { from: 'default' } | { from: 'file'; file: string } | { from: 'env'; name: string } | { from: 'flag'; name: string }

/** What a kind's parser knows about the value in hand. */
export interface FieldContext {
  /** The full path of the field, e.g. `pressure.maxEventLoopDelay` or `upstreams[0].url`. */
  readonly path: string
  readonly origin: Origin
  /** Where relative paths start: the configuration file's directory, else the working directory. */
  readonly baseDir: string
  /** Refuses the value, naming the field and where it came from. */
  fail(message: string): never
  /** The context of a part of this value (`[0]`, `.url`), for structured kinds. */
  at(suffix: string): FieldContext
}

/**
 * How one kind of setting is read, printed and documented. Values from the environment
 * and flags arrive as text; values from the file as whatever YAML made of them.
 */
export interface Kind<T> {
  /** For the generated reference, e.g. `size` or `duration (a bare number is seconds)`. */
  readonly describe: string
  /** Numeric kinds honour a setting's min and max. */
  readonly numeric?: boolean
  /** A flag of this kind may be given several times; the values form the list. */
  readonly repeatable?: boolean
  /** Text from the environment or a flag is YAML to be parsed before `parse` sees it. */
  readonly yamlText?: boolean
  parse(raw: unknown, field: FieldContext): T
  /** The inverse of parse for text (empty for an empty collection): printed by `config check` and the reference. */
  format(value: T): string
  /** Printed instead of the value when the setting is secret. */
  redact?(value: T): string
}

export function originText(origin: Origin): string {
  switch (origin.from) {
    case 'default':
      return 'default'
    case 'file':
      return 'file'
    case 'env':
    case 'flag':
      return origin.name
  }
}

export function fieldContext(path: string, origin: Origin, baseDir: string): FieldContext {
  return {
    path,
    origin,
    baseDir,
    fail(message: string): never {
      const where = origin.from === 'default' ? ' (the default)' : origin.from === 'file' ? ` (in ${origin.file})` : ` (from ${origin.name})`
      throw new NixcasError('BAD_CONFIG', `configuration field "${path}": ${message}${where}`)
    },
    at: (suffix) => fieldContext(`${path}${suffix}`, origin, baseDir),
  }
}

const show = (value: unknown): string => JSON.stringify(value) ?? String(value)

/** A whole number of at least 0; digits in text count too, since environment values are text. */
function wholeNumber(raw: unknown, field: FieldContext, expected: string): number {
  const number = typeof raw === 'string' && /^\s*\d+\s*$/.test(raw) ? Number(raw) : raw
  if (typeof number !== 'number' || !Number.isSafeInteger(number) || number < 0) return field.fail(`expected ${expected}, got ${show(raw)}`)
  return number
}

export const integer: Kind<number> = {
  describe: 'integer',
  numeric: true,
  parse: (raw, field) => wholeNumber(raw, field, 'a whole number'),
  format: String,
}

export const size: Kind<number> = {
  describe: 'size (`64MiB`, `1G`, bytes)',
  numeric: true,
  parse(raw, field) {
    const bytes = typeof raw === 'string' ? parseSize(raw) : raw
    return wholeNumber(bytes ?? raw, field, 'a size such as 64MiB')
  },
  format: formatSize,
}

/** A duration held as a whole number of `unit`; a bare number is in that unit. */
export function duration(unit: 's' | 'ms'): Kind<number> {
  const factor = unit === 's' ? 1000 : 1
  const name = unit === 's' ? 'seconds' : 'milliseconds'
  return {
    describe: `duration (\`30d\`, \`12h\`, \`90s\`, \`500ms\`; a bare number is ${name})`,
    numeric: true,
    parse(raw, field) {
      const ms = typeof raw === 'string' && !/^\s*\d+\s*$/.test(raw) ? parseDuration(raw) : undefined
      if (ms === undefined) return wholeNumber(raw, field, `a duration such as 90s or a number of ${name}`)
      if (ms % factor !== 0) return field.fail(`expected a whole number of ${name}, got ${show(raw)}`)
      return ms / factor
    },
    format: (value) => formatDuration(value * factor),
  }
}

export const boolean: Kind<boolean> = {
  describe: 'boolean',
  parse(raw, field) {
    if (typeof raw === 'boolean') return raw
    if (raw === 'true' || raw === '1') return true
    if (raw === 'false' || raw === '0') return false
    return field.fail(`expected true or false, got ${show(raw)}`)
  },
  format: String,
}

export const string: Kind<string> = {
  describe: 'string',
  parse(raw, field) {
    if (typeof raw === 'string' && raw.length > 0) return raw
    if (typeof raw === 'number') return String(raw)
    return field.fail(`expected a non-empty string, got ${show(raw)}`)
  },
  format: (value) => value,
}

/** One of a fixed set of words. */
export function oneOf(...values: string[]): Kind<string> {
  return {
    describe: `one of ${values.map((value) => `\`${value}\``).join(', ')}`,
    parse(raw, field) {
      if (typeof raw === 'string' && values.includes(raw)) return raw
      return field.fail(`expected one of ${values.join(', ')}, got ${show(raw)}`)
    },
    format: (value) => value,
  }
}

export const stringList: Kind<string[]> = {
  describe: 'list of strings (comma-separated in the environment)',
  repeatable: true,
  parse(raw, field) {
    if (typeof raw === 'string') return raw.split(',').map((item) => item.trim()).filter((item) => item.length > 0)
    if (!Array.isArray(raw)) return field.fail(`expected a list of strings, got ${show(raw)}`)
    raw.forEach((item, index) => {
      if (typeof item !== 'string' || item.length === 0) field.at(`[${index}]`).fail(`expected a non-empty string, got ${show(item)}`)
    })
    return raw as string[]
  },
  format: (value) => value.join(', '),
  redact: (value) => (value.length === 0 ? '' : `(${value.length} redacted)`),
}

/**
 * Paths of files, made absolute when read: against the configuration file's directory
 * for paths written there, like the fs store's paths, else against the working directory.
 */
export const fileList: Kind<string[]> = {
  ...stringList,
  describe: 'list of files (relative to the configuration file, or to the working directory from the environment or flags)',
  parse: (raw, field) => stringList.parse(raw, field).map((path) => (isAbsolute(path) ? path : resolve(field.baseDir, path))),
}

/** A directory, made absolute when read (relative to what fileList paths are). */
export const directory: Kind<string> = {
  ...string,
  describe: 'directory (relative to the configuration file, or to the working directory from the environment or flags)',
  parse: (raw, field) => {
    const path = string.parse(raw, field)
    return isAbsolute(path) ? path : resolve(field.baseDir, path)
  },
}

/** User names to passwords: a mapping in the file, `user:password,…` in the environment. */
export const userMap: Kind<Record<string, string>> = {
  describe: 'mapping of user names to passwords (`user:password,…` in the environment)',
  parse(raw, field) {
    if (typeof raw === 'string') {
      return Object.fromEntries(
        stringList.parse(raw, field).map((pair) => {
          const colon = pair.indexOf(':')
          if (colon <= 0 || colon === pair.length - 1) return field.fail('expected user:password pairs')
          return [pair.slice(0, colon), pair.slice(colon + 1)]
        }),
      )
    }
    if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return field.fail('expected a mapping of user names to passwords')
    for (const [user, password] of Object.entries(raw)) {
      if (typeof password !== 'string' || password.length === 0) field.at(`.${user}`).fail('expected a non-empty password')
    }
    return raw as Record<string, string>
  },
  format: (value) => Object.entries(value).map(([user, password]) => `${user}:${password}`).join(', '),
  redact: (value) => Object.keys(value).map((user) => `${user}:***`).join(', '),
}

export interface ListenAddress {
  host: string
  port: number
}

const LISTEN = /^(?:(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):)?(\d{1,5})$/

/** `HOST:PORT`, `:PORT`, `PORT` or `[IPv6]:PORT`; the host defaults to loopback. */
export const listenAddress: Kind<ListenAddress> = {
  describe: 'listen address (`HOST:PORT`, `:PORT`, `PORT`, `[IPv6]:PORT`)',
  parse(raw, field) {
    const text = typeof raw === 'number' ? String(raw) : raw
    const match = typeof text === 'string' ? LISTEN.exec(text.trim()) : null
    const port = Number(match?.[3])
    if (!match || port > 65535) return field.fail(`expected HOST:PORT, got ${show(raw)}`)
    return { host: match[1] ?? (match[2] || '127.0.0.1'), port }
  },
  format: ({ host, port }) => `${host.includes(':') ? `[${host}]` : host}:${port}`,
}

/**
 * Anything else, e.g. a list of objects: the declaration brings its own parser. Text
 * from the environment is YAML (`NIXCAS_X='[{url: …}]'`). Use `mappingOf` to refuse
 * unknown fields inside.
 */
export function custom<T>(kind: { describe: string; parse(raw: unknown, field: FieldContext): T; format(value: T): string }): Kind<T> {
  return { yamlText: true, ...kind }
}

/**
 * Checks that `raw` is a mapping whose fields are all in `known`, naming any other
 * field by its full path; for custom kinds.
 */
export function mappingOf(raw: unknown, field: FieldContext, known: readonly string[]): Record<string, unknown> {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return field.fail(`expected a mapping, got ${show(raw)}`)
  for (const name of Object.keys(raw)) {
    if (!known.includes(name)) field.at(`.${name}`).fail(`unknown field; known: ${known.join(', ')}`)
  }
  return raw as Record<string, unknown>
}

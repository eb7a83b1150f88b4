import { parse as parseYaml } from 'yaml'
import { NixcasError } from '../errors.ts'
import { fieldContext, type FieldContext, type Origin } from './kinds.ts'
import { flagProperty, Setting, type SettingsTree, type ValuesOf } from './setting.ts'

/** What settings are resolved from, lowest precedence first: defaults, file, environment, flags. */
export interface Sources {
  /** The configuration file's contents; `{}` without one. */
  document: Record<string, unknown>
  /** The file's path, for messages. */
  file?: string
  /** Where relative paths in the file start. */
  fileDir: string
  /** Where relative paths in the environment and flags start. */
  workDir: string
  env: Readonly<Record<string, string | undefined>>
  /** commander's options object: property name → text, or list of texts for repeatable flags. */
  flags: Readonly<Record<string, unknown>>
}

export interface Resolved<S> {
  values: ValuesOf<S>
  /** Where each setting's value came from, by dotted path. */
  origins: Map<string, Origin>
}

const isMapping = (value: unknown): value is Record<string, unknown> => !!value && typeof value === 'object' && !Array.isArray(value)

/** The raw value of one setting and where it came from, by precedence. */
function pick(setting: Setting<unknown>, fileValue: unknown, sources: Sources): { raw: unknown; origin: Origin } | undefined {
  const { flag, env } = setting.declaration
  const fromFlag = flag === undefined ? undefined : sources.flags[flagProperty(flag)]
  if (fromFlag !== undefined && !(Array.isArray(fromFlag) && fromFlag.length === 0)) return { raw: fromFlag, origin: { from: 'flag', name: flag?.split(' ')[0] ?? '' } }
  const fromEnv = env === undefined ? undefined : sources.env[env]
  if (env !== undefined && fromEnv !== undefined) return { raw: fromEnv, origin: { from: 'env', name: env } }
  // `key:` with nothing after it (say, every item commented out) is YAML null: not set.
  if (fileValue !== undefined && fileValue !== null) return { raw: fileValue, origin: { from: 'file', file: sources.file ?? 'configuration' } }
  return undefined
}

/** Bounds and the declaration's own rule, for parsed values and defaults alike. */
function validate(setting: Setting<unknown>, value: unknown, field: FieldContext): void {
  const { kind, min, max } = setting.declaration
  if (typeof value === 'number') {
    if (min !== undefined && value < min) field.fail(`must be at least ${kind.format(min)}, got ${kind.format(value)}`)
    if (max !== undefined && value > max) field.fail(`must be at most ${kind.format(max)}, got ${kind.format(value)}`)
  }
  const problem = value === undefined ? undefined : setting.declaration.check?.(value)
  if (problem !== undefined) field.fail(problem)
}

function resolveOne(path: string, setting: Setting<unknown>, fileValue: unknown, sources: Sources, origins: Map<string, Origin>): unknown {
  const { kind, required } = setting.declaration
  const picked = pick(setting, fileValue, sources)
  if (picked === undefined) {
    const field = fieldContext(path, { from: 'default' }, sources.workDir)
    if (required) throw new NixcasError('BAD_CONFIG', `configuration field "${path}": is required${sources.file ? ` in ${sources.file}` : ''}`)
    validate(setting, setting.declaration.default, field)
    origins.set(path, { from: 'default' })
    return setting.declaration.default
  }
  const field = fieldContext(path, picked.origin, picked.origin.from === 'file' ? sources.fileDir : sources.workDir)
  let raw = picked.raw
  if (kind.yamlText && typeof raw === 'string' && picked.origin.from !== 'file') {
    try {
      raw = parseYaml(raw) as unknown
    } catch (error) {
      field.fail(`not YAML: ${(error as Error).message}`)
    }
  }
  const value = kind.parse(raw, field)
  validate(setting, value, field)
  origins.set(path, picked.origin)
  return value
}

function resolveTree(tree: SettingsTree, document: Record<string, unknown>, prefix: string, sources: Sources, origins: Map<string, Origin>): Record<string, unknown> {
  for (const name of Object.keys(document)) {
    if (!Object.hasOwn(tree, name)) {
      const known = Object.keys(tree).join(', ')
      throw new NixcasError('BAD_CONFIG', `configuration field "${prefix}${name}": unknown field${sources.file ? ` in ${sources.file}` : ''}; known here: ${known}`)
    }
  }
  const values: Record<string, unknown> = {}
  for (const [name, node] of Object.entries(tree)) {
    const path = `${prefix}${name}`
    const inFile = document[name]
    if (node instanceof Setting) {
      values[name] = resolveOne(path, node, inFile, sources, origins)
    } else {
      if (inFile !== undefined && inFile !== null && !isMapping(inFile)) {
        throw new NixcasError('BAD_CONFIG', `configuration field "${path}": expected a mapping of ${Object.keys(node).join(', ')}, got ${JSON.stringify(inFile)}`)
      }
      values[name] = resolveTree(node, isMapping(inFile) ? inFile : {}, `${path}.`, sources, origins)
    }
  }
  return values
}

/**
 * Resolves every setting of `tree` from its sources, refusing unknown fields at every
 * level and any bad value with its full path and where it came from.
 */
export function resolveSettings<S extends SettingsTree>(tree: S, sources: Sources): Resolved<S> {
  const origins = new Map<string, Origin>()
  const values = resolveTree(tree, sources.document, '', sources, origins) as ValuesOf<S>
  return { values, origins }
}

/** The value at a dotted path of resolved values. */
export function valueAt(values: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((node, name) => (isMapping(node) ? node[name] : undefined), values)
}

/** Whether a setting is given outside the file (environment or flag): it then wins. */
export function givenOutsideFile(setting: Setting<unknown>, sources: Pick<Sources, 'env' | 'flags'>): boolean {
  return pick(setting, undefined, { ...sources, document: {}, fileDir: '', workDir: '' }) !== undefined
}

import type { Logger } from 'pino'
import { NixcasError } from '../errors.ts'
import { parseSize } from '../units.ts'
import type { ObjectStore } from './store.ts'
import { storeTypes, type OptionSpec } from './types.ts'
import { storeConfigFromUrl } from './url.ts'

/**
 * A store instance as written in configuration: `type` plus its options. Where an option
 * names another store, it may hold an instance name, a URL, or an inline definition.
 */
export type InstanceConfig = { type: string } & Record<string, unknown>

export interface StoreConfig {
  stores: Record<string, InstanceConfig>
  root: string | InstanceConfig
}

export interface StoreStack {
  root: ObjectStore
  /** Every built instance by name, members before the stores that use them. */
  instances: ReadonlyMap<string, ObjectStore>
  /** One line per instance, for the start-up log. */
  describe(): string[]
  close(): Promise<void>
}

export interface ComposeOptions {
  logger: Logger
  /** Relative fs paths are resolved against this directory. */
  baseDir?: string
  /** Wraps every built instance (metrics); must keep its name. */
  instrument?: (store: ObjectStore) => ObjectStore
  /** Told of every retry a retry instance makes. */
  onRetry?: (store: string, operation: string) => void
}

type OptionValue = string | number | boolean | undefined
interface Normalized {
  type: string
  options: Record<string, OptionValue>
  refs: Record<string, string[]>
}

const configError = (instance: string, field: string | null, message: string): NixcasError =>
  new NixcasError('BAD_CONFIG', `store "${instance}"${field ? `, field "${field}"` : ''}: ${message}`)


function parseValue(instance: string, field: string, spec: OptionSpec, value: unknown): OptionValue {
  const fail = (expected: string): never => {
    throw configError(instance, field, `expected ${expected}, got ${JSON.stringify(value)}`)
  }
  let parsed: OptionValue
  switch (spec.kind) {
    case 'string':
      if (typeof value !== 'string' || value.length === 0) fail('a non-empty string')
      return value as string
    case 'boolean':
      if (typeof value === 'boolean') return value
      if (value === 'true' || value === '1') return true
      if (value === 'false' || value === '0') return false
      return fail('true or false')
    case 'integer':
      parsed = typeof value === 'number' ? value : typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : fail('an integer')
      break
    case 'size': {
      parsed = typeof value === 'number' ? value : ((typeof value === 'string' ? parseSize(value) : undefined) ?? fail('a size such as 512MiB'))
      break
    }
    default:
      return fail('a store')
  }
  if (!Number.isSafeInteger(parsed) || parsed < (spec.min ?? 0)) fail(`an integer of at least ${spec.min ?? 0}`)
  return parsed
}

/** Flattens inline definitions and URLs into named instances, checking every option. */
function normalize(config: StoreConfig): { instances: Map<string, Normalized>; root: string } {
  const instances = new Map<string, Normalized>()
  const pending: [string, unknown][] = Object.entries(config.stores ?? {})
  const known = new Set(pending.map(([name]) => name))

  const reference = (owner: string, field: string, value: unknown): string => {
    // A known name first: names derived from URLs look like URLs themselves.
    if (typeof value === 'string' && (known.has(value) || !/^[a-z][a-z0-9+.-]*:/i.test(value))) return value
    if (typeof value === 'string') {
      let fromUrl: StoreConfig
      try {
        fromUrl = storeConfigFromUrl(value)
      } catch (error) {
        throw configError(owner, field, (error as Error).message)
      }
      for (const [name, definition] of Object.entries(fromUrl.stores)) {
        if (known.has(name)) continue
        known.add(name)
        pending.push([name, definition])
      }
      return fromUrl.root as string
    }
    if (value && typeof value === 'object' && !Array.isArray(value)) {
      const name = `${owner}.${field}`
      known.add(name)
      pending.push([name, value])
      return name
    }
    throw configError(owner, field, `expected a store name, a URL or an inline definition, got ${JSON.stringify(value)}`)
  }

  const rootName = reference('root', 'root', config.root)
  while (pending.length > 0) {
    const [name, definition] = pending.shift() as [string, unknown]
    if (instances.has(name)) continue
    if (!definition || typeof definition !== 'object' || Array.isArray(definition)) throw configError(name, null, 'must be a mapping with a "type"')
    const { type, ...rest } = definition as Record<string, unknown>
    if (typeof type !== 'string') throw configError(name, 'type', 'is missing')
    const spec = storeTypes[type]
    if (!spec) throw configError(name, 'type', `unknown type ${JSON.stringify(type)}; known: ${Object.keys(storeTypes).join(', ')}`)
    const normalized: Normalized = { type, options: {}, refs: {} }
    for (const [field, value] of Object.entries(rest)) {
      const option = spec.options[field]
      if (!option) throw configError(name, field, `unknown option for type ${type}; known: ${Object.keys(spec.options).join(', ') || 'none'}`)
      if (option.kind === 'store') normalized.refs[field] = [reference(name, field, value)]
      else if (option.kind === 'stores') {
        if (!Array.isArray(value) || value.length === 0) throw configError(name, field, 'expected a non-empty list of stores')
        normalized.refs[field] = value.map((member, index) => reference(name, `${field}[${index}]`, member))
      } else normalized.options[field] = parseValue(name, field, option, value)
    }
    for (const [field, option] of Object.entries(spec.options)) {
      if (option.required && normalized.options[field] === undefined && normalized.refs[field] === undefined) {
        throw configError(name, field, `is required for type ${type}`)
      }
    }
    instances.set(name, normalized)
  }
  return { instances, root: rootName }
}

/** Every reference must name an instance, and no instance may reach itself. */
function checkGraph(instances: Map<string, Normalized>, root: string): void {
  if (!instances.has(root)) throw configError('root', 'root', `no store named ${JSON.stringify(root)}`)
  const done = new Set<string>()
  const path: string[] = []
  const visit = (name: string): void => {
    if (done.has(name)) return
    if (path.includes(name)) throw configError(name, null, `is part of a cycle: ${[...path.slice(path.indexOf(name)), name].join(' → ')}`)
    path.push(name)
    for (const [field, members] of Object.entries((instances.get(name) as Normalized).refs)) {
      for (const member of members) {
        if (!instances.has(member)) throw configError(name, field, `no store named ${JSON.stringify(member)}`)
        visit(member)
      }
    }
    path.pop()
    done.add(name)
  }
  for (const name of instances.keys()) visit(name)
}

/** Builds every instance reachable from the root; refuses unknown names and cycles. */
export function composeStores(config: StoreConfig, options: ComposeOptions): StoreStack {
  const baseDir = options.baseDir ?? process.cwd()
  const { instances, root } = normalize(config)
  checkGraph(instances, root)
  const built = new Map<string, ObjectStore>()

  const build = (name: string): ObjectStore => {
    const existing = built.get(name)
    if (existing) return existing
    const definition = instances.get(name) as Normalized
    const members = (field: string): ObjectStore[] => (definition.refs[field] ?? []).map(build)
    const spec = storeTypes[definition.type] as (typeof storeTypes)[string]
    let store: ObjectStore
    try {
      store = spec.build({
        name,
        options: definition.options,
        store: (field) => members(field)[0] as ObjectStore,
        stores: members,
        logger: options.logger.child({ store: name }),
        baseDir,
        onRetry: (operation) => options.onRetry?.(name, operation),
      })
    } catch (error) {
      if (error instanceof NixcasError && error.code === 'BAD_CONFIG') throw error
      throw new NixcasError('BAD_CONFIG', `store "${name}": ${(error as Error).message}`, { cause: error })
    }
    const instrumented = options.instrument ? options.instrument(store) : store
    built.set(name, instrumented)
    return instrumented
  }

  const rootStore = build(root)
  return {
    root: rootStore,
    instances: built,
    describe: () =>
      [...built.keys()].map((name) => {
        const definition = instances.get(name) as Normalized
        const parts = [
          ...Object.entries(definition.options).filter(([field]) => !/secret/i.test(field)).map(([field, value]) => `${field}=${String(value)}`),
          ...Object.entries(definition.refs).map(([field, refs]) => `${field}=${refs.join(',')}`),
        ]
        return `${name}${name === root ? ' (root)' : ''}: ${definition.type}${parts.length > 0 ? ` {${parts.join(', ')}}` : ''}`
      }),
    close: async () => {
      for (const store of [...built.values()].reverse()) await store.close()
    },
  }
}

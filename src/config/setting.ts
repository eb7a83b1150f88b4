import type { Kind } from './kinds.ts'

/** Everything known about one setting, written once in the table (settings.ts). */
export interface Declaration<T> {
  kind: Kind<T>
  /** One line for `--help`, `config docs` and the README. */
  doc: string
  /** Used when no file, variable or flag gives a value. */
  default?: T
  /** No default and no value is an error. */
  required?: boolean
  /** NIXCAS_…; text, parsed by the kind. */
  env?: `NIXCAS_${string}`
  /** A flag of `nixcas serve`, in commander syntax: `--listen <host:port>`. */
  flag?: `--${string} <${string}>`
  /** Bounds for numeric kinds, in the setting's own unit. */
  min?: number
  max?: number
  /** Printed redacted by `config check`. */
  secret?: boolean
  /** Any further rule; returns what is wrong, or undefined. */
  check?(value: T): string | undefined
}

export class Setting<T> {
  constructor(readonly declaration: Declaration<T>) {}
}

/** Declares a setting; without a default (and not required) its value may be undefined. */
export function setting<T>(declaration: Declaration<T> & ({ default: T } | { required: true })): Setting<T>
export function setting<T>(declaration: Declaration<T>): Setting<T | undefined>
export function setting<T>(declaration: Declaration<T>): Setting<T> {
  // Mistakes in the table itself surface when the table is loaded, not when a value trips them.
  if ((declaration.min !== undefined || declaration.max !== undefined) && !declaration.kind.numeric) throw new Error(`min and max need a numeric kind, not ${declaration.kind.describe}`)
  if (declaration.flag !== undefined && !/^--[a-z][a-z0-9-]* <[^>]+>$/.test(declaration.flag)) throw new Error(`flag ${declaration.flag} must look like --name <value>`)
  return new Setting(declaration)
}

/** Settings and sections (`auth`, `pressure`) of settings, as they nest in the file. */
export interface SettingsTree {
  readonly [name: string]: Setting<unknown> | SettingsTree
}

/** The resolved values of a tree, typed from its declarations. */
export type ValuesOf<S> = { -readonly [K in keyof S]: S[K] extends Setting<infer T> ? T : ValuesOf<S[K]> }

export interface Leaf {
  /** Dotted path in the file, e.g. `pressure.retryAfter`. */
  path: string
  setting: Setting<unknown>
}

/** Every setting in declaration order, with its full path. */
export function leaves(tree: SettingsTree, prefix = ''): Leaf[] {
  return Object.entries(tree).flatMap(([name, node]) =>
    node instanceof Setting ? [{ path: `${prefix}${name}`, setting: node }] : leaves(node, `${prefix}${name}.`),
  )
}

/** commander's property name for a flag: `--signing-key <file>` → `signingKey`. */
export function flagProperty(flag: string): string {
  const name = /^--([a-z0-9-]+)/.exec(flag)?.[1] ?? flag
  return name.replace(/-([a-z0-9])/g, (_, letter: string) => letter.toUpperCase())
}

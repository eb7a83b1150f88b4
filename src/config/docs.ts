import { originText, type Origin } from './kinds.ts'
import { valueAt } from './resolve.ts'
import { leaves, type Setting, type SettingsTree } from './setting.ts'

const cell = (text: string): string => text.replace(/\|/g, '\\|').replace(/\n/g, ' ')
const code = (text: string): string => `\`${text}\``

function kindText(setting: Setting<unknown>): string {
  const { kind, min, max } = setting.declaration
  const bounds = [min === undefined ? '' : `at least ${code(kind.format(min))}`, max === undefined ? '' : `at most ${code(kind.format(max))}`].filter(Boolean)
  return [kind.describe, ...bounds].join(', ')
}

function defaultText(setting: Setting<unknown>): string {
  const { kind, required } = setting.declaration
  if (setting.declaration.default !== undefined) {
    const text = kind.format(setting.declaration.default)
    return text === '' ? 'empty' : code(text)
  }
  return required ? 'required' : 'unset'
}

/** The settings reference in markdown, one row per declared setting; `nixcas config docs` prints it. */
export function settingsReference(tree: SettingsTree): string {
  const rows = leaves(tree).map(({ path, setting }) => {
    const { env, flag, doc } = setting.declaration
    const sources = [env === undefined ? '' : code(env), flag === undefined ? '' : code(flag.split(' ')[0] ?? flag)].filter(Boolean).join(', ') || '—'
    return `| ${[code(path), cell(doc), cell(kindText(setting)), cell(defaultText(setting)), cell(sources)].join(' | ')} |`
  })
  return ['| Setting | Meaning | Kind | Default | Environment, flag |', '|---|---|---|---|---|', ...rows].join('\n') + '\n'
}

/** One line per setting, `path  value  origin`, secrets redacted; for `nixcas config check`. */
export function effectiveSettings(tree: SettingsTree, values: unknown, origins: ReadonlyMap<string, Origin>): string[] {
  const rows = leaves(tree).map(({ path, setting }) => {
    const { kind, secret } = setting.declaration
    const value = valueAt(values, path)
    const shown = value === undefined ? 'unset' : (secret ? (kind.redact?.(value) ?? '(redacted)') : kind.format(value)) || '(empty)'
    const origin = origins.get(path)
    return [path, shown, origin === undefined ? '' : originText(origin)] as const
  })
  const pathWidth = Math.max(...rows.map(([path]) => path.length))
  const valueWidth = Math.min(40, Math.max(...rows.map(([, value]) => value.length)))
  return rows.map(([path, value, origin]) => `${path.padEnd(pathWidth)}  ${value.padEnd(valueWidth)}  ${origin}`.trimEnd())
}

export const REFERENCE_BEGIN = '<!-- settings reference: nixcas config docs --write README.md -->'
export const REFERENCE_END = '<!-- end of settings reference -->'

/** `text` with the reference between its markers replaced, so the README never drifts from the table. */
export function withReference(text: string, reference: string, source: string): string {
  const begin = text.indexOf(REFERENCE_BEGIN)
  const end = text.indexOf(REFERENCE_END)
  if (begin < 0 || end < begin) throw new Error(`${source} has no "${REFERENCE_BEGIN}" … "${REFERENCE_END}" markers`)
  // The blank line ends the table before the closing marker.
  return `${text.slice(0, begin + REFERENCE_BEGIN.length)}\n${reference}\n${text.slice(end)}`
}

const SIZE = /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB|K|M|G|T)?$/i
const UNITS: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 }

/** `512MiB`, `64 MB`, `1G` (binary), `4096` → bytes; undefined for anything else. */
export function parseSize(text: string): number | undefined {
  const match = SIZE.exec(text.trim())
  return match ? Math.floor(Number(match[1]) * (UNITS[(match[2] ?? 'b').toLowerCase()] ?? 1)) : undefined
}

/** The shortest exact binary spelling (`64MiB`), so printed settings read like the ones written. */
export function formatSize(bytes: number): string {
  for (const [unit, factor] of [['TiB', 2 ** 40], ['GiB', 2 ** 30], ['MiB', 2 ** 20], ['KiB', 2 ** 10]] as const) {
    if (bytes !== 0 && bytes % factor === 0) return `${bytes / factor}${unit}`
  }
  return bytes === 0 ? '0' : `${bytes}B`
}

/** Bytes for people to read (`1.5 MiB`), rounded; not meant to be parsed back. */
export function humanBytes(count: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'] as const
  let value = count
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return unit === 0 ? `${count} B` : `${value.toFixed(1)} ${units[unit]}`
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }
const DURATION = /^(?:\s*\d+(?:\.\d+)?\s*(?:ms|s|m|h|d|w))+\s*$/
const DURATION_PART = /(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)/g

/**
 * `30d`, `12h`, `90s`, `500ms`, `1h30m` → milliseconds (rounded); undefined for anything
 * else, including a bare number, whose unit only the caller knows.
 */
export function parseDuration(text: string): number | undefined {
  if (!DURATION.test(text)) return undefined
  let total = 0
  for (const [, amount, unit] of text.matchAll(DURATION_PART)) total += Number(amount) * (DURATION_UNITS[unit as string] as number)
  return Math.round(total)
}

/** The largest unit that spells `ms` exactly (`1h`, `90s`, `1500ms`); the inverse of parseDuration. */
export function formatDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    const factor = DURATION_UNITS[unit] as number
    if (ms !== 0 && ms % factor === 0) return `${ms / factor}${unit}`
  }
  return ms === 0 ? '0' : `${ms}ms`
}

import { parsePublicKey } from '../nix/signing.ts'
import { boolean, custom, duration, integer, mappingOf, type FieldContext, type Kind } from './kinds.ts'

/** One upstream binary cache as configured: where it is and whose signatures it must carry. */
export interface UpstreamSetting {
  /** Base URL, ending in `/` (so relative NAR URLs resolve under it). */
  url: string
  /** Public keys (`name:base64`) one of which must have signed a narinfo it serves. */
  publicKeys: string[]
  /** Lower is asked first; equal priorities keep the order of the list. */
  priority: number
  /** Most milliseconds for a narinfo lookup, or for a NAR's headers or any pause in its body. */
  timeout: number
  /** Accept narinfos that carry no valid signature from `publicKeys`. */
  allowUnsigned: boolean
  /** Tries of one request on transient errors (network, 5xx, 408, 429), the first included. */
  attempts: number
  /** Milliseconds before the second try, doubled for each next one (with jitter). */
  backoff: number
}

export const DEFAULT_UPSTREAM_PRIORITY = 50
export const DEFAULT_UPSTREAM_TIMEOUT_MS = 5_000
export const DEFAULT_UPSTREAM_ATTEMPTS = 3
export const DEFAULT_UPSTREAM_BACKOFF_MS = 100

const FIELDS = ['url', 'publicKeys', 'priority', 'timeout', 'allowUnsigned', 'attempts', 'backoff'] as const
const show = (value: unknown): string => JSON.stringify(value) ?? String(value)

/** An http(s) URL without credentials, query or fragment, normalised to end in `/`. */
export function upstreamUrl(raw: unknown, field: FieldContext): string {
  if (typeof raw !== 'string' || raw.trim() === '') return field.fail(`expected an http:// or https:// URL, got ${show(raw)}`)
  let url: URL
  try {
    url = new URL(raw.trim())
  } catch {
    return field.fail(`not a URL: ${show(raw)}`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return field.fail(`expected an http:// or https:// URL, got ${show(raw)}`)
  if (url.username !== '' || url.password !== '') return field.fail('credentials in the URL are not supported')
  if (url.search !== '' || url.hash !== '') return field.fail(`a query or fragment has no meaning here: ${show(raw)}`)
  return url.href.endsWith('/') ? url.href : `${url.href}/`
}

/** Public keys as Nix writes them, each checked now so a typo fails at start-up, naming its index. */
export function publicKeyTexts(raw: unknown, field: FieldContext): string[] {
  const list = typeof raw === 'string' ? raw.split(',').map((item) => item.trim()).filter((item) => item.length > 0) : raw
  if (!Array.isArray(list)) return field.fail(`expected a list of public keys (name:base64), got ${show(raw)}`)
  return list.map((item, index) => {
    const at = field.at(`[${index}]`)
    if (typeof item !== 'string') return at.fail(`expected a public key (name:base64), got ${show(item)}`)
    try {
      parsePublicKey(item)
    } catch (error) {
      return at.fail((error as Error).message)
    }
    return item.trim()
  })
}

function upstreamOf(raw: unknown, field: FieldContext): UpstreamSetting {
  // A bare URL (as `--upstream URL` gives) is an upstream with the defaults.
  const fields = typeof raw === 'string' ? { url: raw } : mappingOf(raw, field, FIELDS)
  return {
    url: upstreamUrl(fields.url, field.at('.url')),
    publicKeys: fields.publicKeys === undefined ? [] : publicKeyTexts(fields.publicKeys, field.at('.publicKeys')),
    priority: fields.priority === undefined ? DEFAULT_UPSTREAM_PRIORITY : integer.parse(fields.priority, field.at('.priority')),
    timeout: fields.timeout === undefined ? DEFAULT_UPSTREAM_TIMEOUT_MS : positive(duration('ms').parse(fields.timeout, field.at('.timeout')), field.at('.timeout')),
    allowUnsigned: fields.allowUnsigned === undefined ? false : boolean.parse(fields.allowUnsigned, field.at('.allowUnsigned')),
    attempts: fields.attempts === undefined ? DEFAULT_UPSTREAM_ATTEMPTS : positive(integer.parse(fields.attempts, field.at('.attempts')), field.at('.attempts')),
    backoff: fields.backoff === undefined ? DEFAULT_UPSTREAM_BACKOFF_MS : duration('ms').parse(fields.backoff, field.at('.backoff')),
  }
}

function positive(ms: number, field: FieldContext): number {
  return ms > 0 ? ms : field.fail('must be more than 0')
}

/**
 * `upstreams`: a list of mappings in the file, of URLs from `--upstream` (repeatable), and
 * YAML in NIXCAS_UPSTREAMS (a list, or one URL).
 */
export const upstreamList: Kind<UpstreamSetting[]> = {
  ...custom<UpstreamSetting[]>({
    describe: 'list of upstream caches (`{ url, publicKeys, priority, timeout, allowUnsigned, attempts, backoff }`, or just a URL)',
    parse(raw, field) {
      const list = typeof raw === 'string' ? [raw] : raw
      if (!Array.isArray(list)) return field.fail(`expected a list of upstreams, got ${show(raw)}`)
      return list.map((item, index) => upstreamOf(item, field.at(`[${index}]`)))
    },
    format: (value) => value.map((upstream) => upstream.url).join(', '),
  }),
  repeatable: true,
}

/** `upstreamKeys`: public keys trusted for every upstream (`--upstream-key`, repeatable). */
export const publicKeyList: Kind<string[]> = {
  describe: 'list of public keys (`name:base64`; comma-separated in the environment)',
  repeatable: true,
  parse: publicKeyTexts,
  format: (value) => value.join(', '),
}

import { NixcasError } from '../errors.ts'
import type { InstanceConfig, StoreConfig } from './compose.ts'

const fail = (url: string, message: string): never => {
  throw new NixcasError('BAD_CONFIG', `store URL ${JSON.stringify(url)}: ${message}`)
}

function bucketAndPrefix(url: string, parsed: URL): { bucket: string; prefix?: string } {
  const bucket = parsed.hostname
  if (!/^[a-z0-9][a-z0-9._-]{1,221}[a-z0-9]$/.test(bucket)) fail(url, `${JSON.stringify(bucket)} is not a bucket name`)
  const path = decodeURIComponent(parsed.pathname).replace(/^\/+/, '')
  if (path === '') return { bucket }
  return { bucket, prefix: path.endsWith('/') ? path : `${path}/` }
}

/**
 * Turns a store URL into the same configuration a file would hold:
 *   memory://            file:///abs/path  file:relative/path  (or a bare path)
 *   s3://bucket/prefix?region=…&endpoint=…&forcePathStyle=true
 *   gs://bucket/prefix?project=…
 * Query `retry=<n>` wraps the store in retry; `cache=<url>` then wraps it in a cache whose
 * near side is that URL. Other query keys are options of the store's type.
 */
export function storeConfigFromUrl(url: string): StoreConfig {
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase()
  const queryAt = url.indexOf('?')
  const base = queryAt === -1 ? url : url.slice(0, queryAt)
  const query = new URLSearchParams(queryAt === -1 ? '' : url.slice(queryAt + 1))
  const options: Record<string, unknown> = {}
  let type: string

  if (scheme === undefined || scheme === 'file') {
    type = 'fs'
    const path = scheme === undefined ? base : base.replace(/^file:(\/\/)?/i, '')
    if (path === '') fail(url, 'no path')
    options.path = decodeURIComponent(path)
  } else if (scheme === 'memory') {
    type = 'memory'
  } else if (scheme === 's3' || scheme === 'gs' || scheme === 'gcs') {
    type = scheme === 's3' ? 's3' : 'gcs'
    let parsed: URL
    try {
      parsed = new URL(base)
    } catch (cause) {
      throw new NixcasError('BAD_CONFIG', `store URL ${JSON.stringify(url)}: cannot be parsed`, { cause })
    }
    if (parsed.username || parsed.password || parsed.port) fail(url, 'credentials and ports do not belong in a bucket URL')
    Object.assign(options, bucketAndPrefix(url, parsed))
  } else {
    return fail(url, `unknown scheme ${JSON.stringify(scheme)}; use memory://, file://, s3:// or gs://`)
  }

  const name = base
  const stores: Record<string, InstanceConfig> = {}
  let cache: string | undefined
  let retry: string | undefined
  for (const [key, value] of query) {
    if (key === 'cache') cache = value
    else if (key === 'retry') retry = value
    else if (Object.hasOwn(options, key)) fail(url, `option ${key} is given twice`)
    else options[key] = value
  }
  stores[name] = { type, ...options }
  let root = name
  if (retry !== undefined) {
    stores[`retry(${root})`] = { type: 'retry', store: root, attempts: retry }
    root = `retry(${root})`
  }
  if (cache !== undefined) {
    if (cache === '') fail(url, 'cache= needs the URL of the near store')
    // The near URL becomes an instance of its own through the same code path.
    stores[`cache(${root})`] = { type: 'cache', near: cache, far: root }
    root = `cache(${root})`
  }
  return { stores, root }
}

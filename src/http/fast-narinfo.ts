import type { IncomingMessage, ServerResponse } from 'node:http'
import { cachedEncoding } from './send.ts'

export const NARINFO_TYPE = 'text/x-nix-narinfo'
/** The route a narinfo is served under, as metrics name it. */
export const NARINFO_ROUTE = '/:hash.narinfo'

/** Cache-Control of a narinfo, for CDNs: `narinfoMaxAge` seconds. */
export const narinfoCacheControl = (maxAge: number): string => `public, max-age=${maxAge}`

/** `/` + a store path hash (32 characters) + `.narinfo`. */
const NARINFO_URL_LENGTH = 1 + 32 + '.narinfo'.length

export interface FastNarInfoOptions {
  /** The narinfo of a store path hash if it is in memory (`BinaryCache.cachedNarInfo`). */
  cached(hash: string): Buffer | undefined
  /** Records that the path was served (access records for retention). */
  served(hash: string): void
  /** Counts a request as the app counts the requests it answers. */
  count(route: string, method: string, status: number): void
  cacheControl: string
  /**
   * Whether the fast path may answer now: reads need no credential, request lines are not
   * logged, and the server is not closing (Fastify answers those, as it answers any other).
   */
  open(): boolean
}

/**
 * The request a binary cache answers most (Nix asks for the narinfo of every path of a
 * closure, and again at every build), answered before Fastify when it can be: a GET or HEAD
 * of `/<hash>.narinfo`, with no query string, whose narinfo is in memory. The answer is the
 * route's own (routes/narinfo.ts): the same body and encodings, the same headers, counted in
 * the same metrics and access records. It costs half the CPU: Fastify's request and reply
 * objects, routing and hooks cost as much as the answer itself (one hot narinfo over 32
 * connections with wrk: a bare Node server 35.6k req/s, nginx 36k, the route through Fastify
 * 25–28k). Everything else (a miss, any other URL, credentials required, request logging,
 * a closing server) goes to Fastify. Returns whether it answered.
 */
export function fastNarInfo(options: FastNarInfoOptions): (request: IncomingMessage, response: ServerResponse) => boolean {
  return (request, response) => {
    const { url, method } = request
    if (url === undefined || url.length !== NARINFO_URL_LENGTH || !url.endsWith('.narinfo') || (method !== 'GET' && method !== 'HEAD')) return false
    if (!options.open()) return false
    const hash = url.slice(1, 33)
    const body = options.cached(hash)
    if (body === undefined) return false
    options.served(hash)
    const { encoding, bytes } = cachedEncoding(body, request.headers['accept-encoding'])
    const headers: Record<string, string | number> = { 'content-type': NARINFO_TYPE, 'cache-control': options.cacheControl, vary: 'Accept-Encoding', 'content-length': bytes.length }
    if (encoding !== undefined) headers['content-encoding'] = encoding
    response.writeHead(200, headers)
    response.end(bytes)
    options.count(NARINFO_ROUTE, method, 200)
    return true
  }
}

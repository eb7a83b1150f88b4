import type { IncomingMessage, ServerResponse } from 'node:http'
import { acceptedEncoding } from './send.ts'

export const NAR_TYPE = 'application/x-nix-nar'
/** A NAR is named by its hash: its bytes never change. */
export const NAR_CACHE_CONTROL = 'public, max-age=31536000, immutable'
/** The route NARs are served under, as metrics name it. */
export const NAR_ROUTE = '/nar/:file'

/** `/nar/` + a sha256 in nixbase32 (52 characters) + `.nar`. */
const NAR_URL_LENGTH = '/nar/'.length + 52 + '.nar'.length

export interface FastNarOptions {
  /** The whole NAR of that name if it is in memory (`NarService.cachedNar`). */
  cached(name: string): Buffer | undefined
  /** Records that the NAR was served (access records for retention). */
  served(name: string): void
  /** Counts a request as the app counts the requests it answers. */
  count(route: string, method: string, status: number): void
  /** Counts body bytes sent, as the route counts them. */
  sent(bytes: number): void
  /** The `compressNars` setting: a client that accepts an encoding then gets the route's compressed answer. */
  compressNars: boolean
  /** As for narinfos: no credential needed, request lines not logged, the server not closing. */
  open(): boolean
}

/**
 * A small NAR kept whole in memory, answered before Fastify as cached narinfos are (see
 * fast-narinfo.ts): a GET or HEAD of `/nar/<narhash>.nar` with no query string, no Range and
 * no revalidation, from a client that takes it as it is. The answer is the route's own
 * (routes/nar.ts): the same bytes and headers, counted in the same metrics and access
 * records. Everything else goes to Fastify. Returns whether it answered.
 */
export function fastNar(options: FastNarOptions): (request: IncomingMessage, response: ServerResponse) => boolean {
  return (request, response) => {
    const { url, method, headers } = request
    if (url === undefined || url.length !== NAR_URL_LENGTH || !url.startsWith('/nar/') || !url.endsWith('.nar') || (method !== 'GET' && method !== 'HEAD')) return false
    if (headers.range !== undefined || headers['if-range'] !== undefined || headers['if-none-match'] !== undefined) return false
    const get = method === 'GET'
    if (get && options.compressNars && acceptedEncoding(headers['accept-encoding']) !== undefined) return false
    if (!options.open()) return false
    const name = url.slice('/nar/'.length, -'.nar'.length)
    const body = options.cached(name)
    if (body === undefined) return false
    options.served(name)
    const head: Record<string, string | number> = { 'content-type': NAR_TYPE, 'cache-control': NAR_CACHE_CONTROL, 'accept-ranges': 'bytes', etag: `"${name}"`, 'content-length': body.length }
    if (get && options.compressNars) head.vary = 'Accept-Encoding'
    response.writeHead(200, head)
    response.end(get ? body : undefined)
    if (get) options.sent(body.length)
    options.count(NAR_ROUTE, method, 200)
    return true
  }
}

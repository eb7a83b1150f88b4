import { LogController, type FastifyReply, type FastifyRequest } from 'fastify'
import { isNixcasError, type NixcasError } from '../errors.ts'

/**
 * One log line per request, whatever its fate: served, refused, failed (before or after
 * the headers went out) or abandoned by its client. Errors are recorded on the way and
 * reported in that line, so a failure is never a stack of lines and a request is never
 * without one.
 */

const failures = new WeakMap<FastifyRequest, unknown>()
const completed = new WeakSet<FastifyRequest>()
const done = new WeakSet<FastifyRequest>()

/**
 * To be called first thing for every request: calls `ended` once, when the response is
 * complete ('finish': every byte handed to the socket) or when the connection closed
 * before that (onResponse would never run for a request whose client went away).
 */
export function watchResponse(request: FastifyRequest, reply: FastifyReply, ended: () => void): void {
  const response = reply.raw
  let called = false
  const end = (): void => {
    if (called) return
    called = true
    ended()
  }
  response.once('finish', () => {
    completed.add(request)
    end()
  })
  if (response.closed) end()
  else response.once('close', end)
}

/** Keeps the first error a request met (the later ones are usually its consequences). */
export function recordFailure(request: FastifyRequest, error: unknown): void {
  if (!failures.has(request)) failures.set(request, error)
}

/**
 * Fastify's own request lines stay off; a body that fails after its headers were sent
 * (Fastify then destroys the response) is recorded for the request's line instead.
 */
export class RequestLogController extends LogController {
  constructor() {
    super({ disableRequestLogging: true })
  }

  override streamError(error: Error, request: FastifyRequest): void {
    recordFailure(request, error)
  }
}

/** The status a request that its client abandoned is counted and logged with, as nginx does. */
export const ABANDONED = 499

const CLIENT_GONE = new Set(['ERR_STREAM_PREMATURE_CLOSE', 'ECONNRESET', 'EPIPE', 'ERR_STREAM_DESTROYED', 'ABORTED'])

const field = (value: unknown, name: string): unknown => (typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[name] : undefined)

function errorChain(error: unknown): unknown[] {
  const chain: unknown[] = []
  for (let link = error; link !== undefined && chain.length < 8; link = field(link, 'cause')) chain.push(link)
  return chain
}

/** The corruption behind an error, if any: CORRUPT_OBJECT anywhere in its causes. */
export function corruptionIn(error: unknown): NixcasError | undefined {
  return errorChain(error).find((link): link is NixcasError => isNixcasError(link, 'CORRUPT_OBJECT'))
}

const clientGone = (error: unknown): boolean =>
  error === undefined || CLIENT_GONE.has(String(field(error, 'code')))

/**
 * Writes the request's line, once; returns the status it reports (ABANDONED when the
 * client went away first), or undefined when the line was already written. `rootStore`
 * names the store of a corruption found above the store layer (in a tree being rendered),
 * which reads only from the root.
 */
export function logRequest(request: FastifyRequest, reply: FastifyReply, rootStore: string): number | undefined {
  if (done.has(request)) return undefined
  done.add(request)
  const failure = failures.get(request)
  const finished = completed.has(request)
  const abandoned = !finished && clientGone(failure)
  const status = abandoned ? ABANDONED : reply.statusCode
  const line = { method: request.method, url: request.url, status, ms: Math.round(reply.elapsedTime), range: request.headers.range }
  const corrupt = corruptionIn(failure)
  if (abandoned) request.log.info(line, 'request abandoned by the client')
  else if (corrupt) request.log.error({ ...line, store: corrupt.store ?? rootStore, key: corrupt.key, err: failure }, 'corrupt object')
  else if (failure !== undefined && (status >= 500 || !finished)) request.log.error({ ...line, err: failure }, finished ? 'request failed' : 'response cut short')
  else if (failure !== undefined) request.log.info({ ...line, error: (failure as Error).message }, 'request refused')
  else request.log.info(line, 'request')
  return status
}

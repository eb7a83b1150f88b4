import { LogController, type FastifyBaseLogger, type FastifyReply, type FastifyRequest } from 'fastify'
import type { Bindings, ChildLoggerOptions, LevelWithSilentOrString } from 'pino'
import { isNixcasError, type NixcasError } from '../errors.ts'

/**
 * One log line per request, whatever its fate: served, refused, failed (before or after
 * the headers went out) or abandoned by its client. Errors are recorded on the way and
 * reported in that line, so a failure is never a stack of lines and a request is never
 * without one.
 */

const failures = new WeakMap<FastifyRequest, unknown>()

/**
 * To be called first thing for every request: calls `ended` once, when the response is
 * complete ('finish': every byte handed to the socket; `completed` true) or when the
 * connection closed before that (onResponse would never run for a request whose client went
 * away). Plain listeners, not `once`: a response ends once, and this runs for every request.
 */
export function watchResponse(request: FastifyRequest, reply: FastifyReply, ended: (request: FastifyRequest, reply: FastifyReply, completed: boolean) => void): void {
  const response = reply.raw
  let called = false
  const end = (completed: boolean): void => {
    if (called) return
    called = true
    ended(request, reply, completed)
  }
  response.on('finish', () => end(true))
  if (response.closed) end(false)
  else response.on('close', () => end(false))
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
 * Writes the request's line (once: `watchResponse` ends a request once); returns the status
 * it reports (ABANDONED when the client went away first). `finished`: the response was
 * complete. `rootStore` names the store of a corruption found above the store layer (in a
 * tree being rendered), which reads only from the root.
 */
export function logRequest(request: FastifyRequest, reply: FastifyReply, rootStore: string, finished: boolean): number {
  const failure = failures.get(request)
  const abandoned = !finished && clientGone(failure)
  const status = abandoned ? ABANDONED : reply.statusCode
  // The common request, served without a failure, costs no line at all while info is off.
  if (failure === undefined && !abandoned && !levelEnabled(request.log, 'info')) return status
  const line = { method: request.method, url: request.url, status, ms: Math.round(reply.elapsedTime), range: request.headers.range }
  const corrupt = corruptionIn(failure)
  if (abandoned) request.log.info(line, 'request abandoned by the client')
  else if (corrupt) request.log.error({ ...line, store: corrupt.store ?? rootStore, key: corrupt.key, err: failure }, 'corrupt object')
  else if (failure !== undefined && (status >= 500 || !finished)) request.log.error({ ...line, err: failure }, finished ? 'request failed' : 'response cut short')
  else if (failure !== undefined) request.log.info({ ...line, error: (failure as Error).message }, 'request refused')
  else request.log.info(line, 'request')
  return status
}

/** Whether a logger writes lines of `level` (pino's loggers and ours say; others are assumed to). */
export function levelEnabled(logger: FastifyBaseLogger, level: Level): boolean {
  return (logger as FastifyBaseLogger & { isLevelEnabled?: (level: string) => boolean }).isLevelEnabled?.(level) ?? true
}

type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'

/**
 * A request's logger, made only when the request logs: Fastify gives every request a child
 * logger (bound to its request id), and making one costs more than answering a cached
 * narinfo. Most requests log nothing, or nothing at the configured level.
 */
export class RequestLogger implements FastifyBaseLogger {
  #child: FastifyBaseLogger | undefined

  constructor(
    private readonly parent: FastifyBaseLogger,
    private readonly bindings: Bindings,
    private readonly options: ChildLoggerOptions,
  ) {}

  private get logger(): FastifyBaseLogger {
    return (this.#child ??= this.parent.child(this.bindings, this.options))
  }

  get level(): LevelWithSilentOrString {
    return this.#child?.level ?? this.options.level ?? this.parent.level
  }

  set level(level: LevelWithSilentOrString) {
    this.logger.level = level
  }

  /** Without making the child when it would log nothing. */
  isLevelEnabled(level: Level): boolean {
    return levelEnabled(this.#child ?? (this.options.level === undefined ? this.parent : this.logger), level)
  }

  private forward(level: Level, args: unknown[]): void {
    if (this.isLevelEnabled(level)) Reflect.apply(this.logger[level], this.logger, args)
  }

  // Methods on the prototype: a request that never logs allocates nothing but this object.
  fatal(...args: unknown[]): void {
    this.forward('fatal', args)
  }

  error(...args: unknown[]): void {
    this.forward('error', args)
  }

  warn(...args: unknown[]): void {
    this.forward('warn', args)
  }

  info(...args: unknown[]): void {
    this.forward('info', args)
  }

  debug(...args: unknown[]): void {
    this.forward('debug', args)
  }

  trace(...args: unknown[]): void {
    this.forward('trace', args)
  }

  silent(): void {}

  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.logger.child(bindings, options)
  }
}

/** Fastify's `childLoggerFactory`: each request's logger is a RequestLogger. */
export function requestLogger(this: unknown, logger: FastifyBaseLogger, bindings: Bindings, options: ChildLoggerOptions): FastifyBaseLogger {
  return new RequestLogger(logger, bindings, options)
}

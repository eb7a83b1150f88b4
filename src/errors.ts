/**
 * Every error nixcas raises on purpose comes from this one table: a stable
 * code, the HTTP status a route answers with, and whether retrying may help.
 */
export const errorTable = {
  BAD_BASE32: { status: 400, transient: false },
  BAD_HASH: { status: 400, transient: false },
  BAD_STORE_PATH: { status: 400, transient: false },
  BAD_NARINFO: { status: 400, transient: false },
  BAD_CACHE_INFO: { status: 400, transient: false },
  BAD_KEY: { status: 400, transient: false },
  BAD_SIGNATURE: { status: 400, transient: false },
  BAD_NAR: { status: 400, transient: false },
  BAD_REALISATION: { status: 400, transient: false },
  BAD_DEBUGINFO: { status: 400, transient: false },
  BAD_REQUEST: { status: 400, transient: false },
  BAD_RANGE: { status: 416, transient: false },
  FORBIDDEN: { status: 403, transient: false },
  TOO_LARGE: { status: 413, transient: false },
  /** An upload that contradicts what is stored (another NarHash for the same store path). */
  CONFLICT: { status: 409, transient: false },
  /** A Content-Encoding the server cannot decode. */
  UNSUPPORTED_ENCODING: { status: 415, transient: false },
  BAD_CONFIG: { status: 500, transient: false },
  /** A fault of ours, not of the request or a store (e.g. an ingest worker that died). */
  INTERNAL: { status: 500, transient: false },
  /** Load shedding: the request may be retried after Retry-After. */
  OVERLOADED: { status: 503, transient: true },
  STORE_UNAVAILABLE: { status: 503, transient: true },
  /** A garbage collection is deleting and this write relies on old objects: retry once it is done. */
  GC_IN_PROGRESS: { status: 503, transient: true },
  STORE_FAILED: { status: 502, transient: false },
  CORRUPT_OBJECT: { status: 502, transient: false },
  MISSING_OBJECT: { status: 502, transient: false },
  /** An upstream cache failed, stalled or answered what it must not; a narinfo lookup turns this into a 404. */
  UPSTREAM_FAILED: { status: 502, transient: true },
  /** An upstream NAR that does not match its narinfo (NarHash, NarSize, or not a NAR): never stored or served. */
  UPSTREAM_CORRUPT: { status: 502, transient: false },
  /** An upload body that stopped arriving while the server waited for it. */
  UPLOAD_TIMEOUT: { status: 408, transient: true },
  ABORTED: { status: 499, transient: false },
} as const satisfies Record<string, { status: number; transient: boolean }>

export type ErrorCode = keyof typeof errorTable

export interface NixcasErrorOptions {
  cause?: unknown
  /** Overrides the table's transient flag (e.g. a store error known to be a timeout). */
  transient?: boolean
  /** The store instance and key the error is about, as fields for logs (a corrupt object). */
  store?: string
  key?: string
}

export class NixcasError extends Error {
  readonly code: ErrorCode
  readonly status: number
  readonly transient: boolean
  readonly store?: string
  readonly key?: string

  constructor(code: ErrorCode, message: string, options: NixcasErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'NixcasError'
    this.code = code
    this.status = errorTable[code].status
    this.transient = options.transient ?? errorTable[code].transient
    if (options.store !== undefined) this.store = options.store
    if (options.key !== undefined) this.key = options.key
  }
}

export function isNixcasError(error: unknown, code?: ErrorCode): error is NixcasError {
  return error instanceof NixcasError && (code === undefined || error.code === code)
}

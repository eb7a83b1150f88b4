import { createHash, timingSafeEqual } from 'node:crypto'
import { isIP } from 'node:net'

export interface Credentials {
  /** Accepted as `Bearer <token>`, or as the password of HTTP Basic with any user name. */
  tokens: readonly string[]
  /** HTTP Basic user → password (what Nix sends from netrc). */
  users: Readonly<Record<string, string>>
}

const digest = (text: string): Buffer => createHash('sha256').update(text).digest()
const same = (a: Buffer, b: Buffer): boolean => timingSafeEqual(a, b)

export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true
  if (isIP(host) === 4) return host.startsWith('127.')
  return host === '::1' || host === '0:0:0:0:0:0:0:1'
}

/** Checks an Authorization header against a set of credentials, in constant time per secret. */
export class CredentialCheck {
  private readonly tokens: Buffer[]
  private readonly users: Map<string, Buffer>

  constructor(credentials: Credentials) {
    this.tokens = credentials.tokens.map(digest)
    this.users = new Map(Object.entries(credentials.users).map(([user, password]) => [user, digest(password)]))
  }

  get empty(): boolean {
    return this.tokens.length === 0 && this.users.size === 0
  }

  accepts(authorization: string | undefined): boolean {
    if (!authorization) return false
    const space = authorization.indexOf(' ')
    const scheme = authorization.slice(0, space).toLowerCase()
    const value = authorization.slice(space + 1).trim()
    if (scheme === 'bearer') {
      const given = digest(value)
      return this.tokens.some((token) => same(token, given))
    }
    if (scheme === 'basic') {
      const decoded = Buffer.from(value, 'base64').toString('utf8')
      const colon = decoded.indexOf(':')
      if (colon < 0) return false
      const password = digest(decoded.slice(colon + 1))
      const expected = this.users.get(decoded.slice(0, colon))
      return (expected !== undefined && same(expected, password)) || this.tokens.some((token) => same(token, password))
    }
    return false
  }
}

/**
 * Who may read and write. Writes need a credential; with none configured they are open
 * only on a loopback-only server. Reads are public unless read credentials exist (write
 * credentials then also allow reading).
 */
export class AccessPolicy {
  private readonly write: CredentialCheck
  private readonly read: CredentialCheck
  readonly anonymousWrites: boolean

  constructor(write: Credentials, read: Credentials, listenHost: string) {
    this.write = new CredentialCheck(write)
    this.read = new CredentialCheck(read)
    this.anonymousWrites = this.write.empty && isLoopback(listenHost)
  }

  /** undefined when allowed; otherwise 401 (no or wrong credential) or 403 (writes closed). */
  checkWrite(authorization: string | undefined): 401 | 403 | undefined {
    if (this.anonymousWrites) return undefined
    if (this.write.empty) return 403
    return this.write.accepts(authorization) ? undefined : 401
  }

  /** No read credentials are configured: anyone may read. */
  get readsPublic(): boolean {
    return this.read.empty
  }

  checkRead(authorization: string | undefined): 401 | undefined {
    if (this.read.empty || this.read.accepts(authorization) || this.write.accepts(authorization)) return undefined
    return 401
  }

  get writesClosed(): boolean {
    return this.write.empty && !this.anonymousWrites
  }
}

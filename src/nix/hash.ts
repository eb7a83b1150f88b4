import { NixcasError } from '../errors.ts'
import { decodeNixbase32, encodeNixbase32, nixbase32Length } from './nixbase32.ts'

export const HASH_SIZES = { md5: 16, sha1: 20, sha256: 32, sha512: 64 } as const
export type HashAlgorithm = keyof typeof HASH_SIZES

/** A hash as Nix prints it in narinfos: algorithm and digest bytes. */
export interface NixHash {
  readonly algorithm: HashAlgorithm
  readonly digest: Uint8Array
}

function isAlgorithm(name: string): name is HashAlgorithm {
  return Object.hasOwn(HASH_SIZES, name)
}

const BASE16 = /^[0-9a-f]+$/i
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/

function decodeDigest(algorithm: HashAlgorithm, text: string, allowBase32: boolean): Uint8Array {
  const size = HASH_SIZES[algorithm]
  if (text.length === size * 2 && BASE16.test(text)) return Buffer.from(text, 'hex')
  if (allowBase32 && text.length === nixbase32Length(size)) return decodeNixbase32(text, size)
  if (text.length === Math.ceil(size / 3) * 4 && BASE64.test(text)) {
    const bytes = Buffer.from(text, 'base64')
    if (bytes.length === size) return bytes
  }
  throw new NixcasError('BAD_HASH', `${algorithm} hash ${JSON.stringify(text)} has the wrong length or encoding`)
}

/**
 * Parses `algo:digest` (base16, nixbase32 or base64, as Nix accepts) or SRI `algo-base64`.
 * `expected` restricts the algorithm.
 */
export function parseNixHash(text: string, expected?: HashAlgorithm): NixHash {
  const colon = text.indexOf(':')
  const dash = text.indexOf('-')
  let algorithm: string
  let digest: Uint8Array
  if (colon > 0) {
    algorithm = text.slice(0, colon)
    if (!isAlgorithm(algorithm)) throw new NixcasError('BAD_HASH', `unknown hash algorithm ${JSON.stringify(algorithm)}`)
    digest = decodeDigest(algorithm, text.slice(colon + 1), true)
  } else if (dash > 0) {
    algorithm = text.slice(0, dash)
    if (!isAlgorithm(algorithm)) throw new NixcasError('BAD_HASH', `unknown hash algorithm ${JSON.stringify(algorithm)}`)
    const body = text.slice(dash + 1)
    if (!BASE64.test(body)) throw new NixcasError('BAD_HASH', `SRI hash ${JSON.stringify(text)} is not base64`)
    digest = decodeDigest(algorithm, body, false)
  } else {
    throw new NixcasError('BAD_HASH', `hash ${JSON.stringify(text)} has no algorithm prefix`)
  }
  if (expected !== undefined && algorithm !== expected) {
    throw new NixcasError('BAD_HASH', `expected a ${expected} hash, got ${algorithm}`)
  }
  return { algorithm, digest }
}

/** `sha256:<nixbase32>`, the form Nix writes in narinfos and fingerprints. */
export function formatNixHash(hash: NixHash): string {
  return `${hash.algorithm}:${encodeNixbase32(hash.digest)}`
}

export function sha256Hash(digest: Uint8Array): NixHash {
  if (digest.length !== HASH_SIZES.sha256) throw new NixcasError('BAD_HASH', `sha256 digest must be 32 bytes`)
  return { algorithm: 'sha256', digest }
}

export function hashesEqual(a: NixHash, b: NixHash): boolean {
  return a.algorithm === b.algorithm && Buffer.compare(a.digest, b.digest) === 0
}

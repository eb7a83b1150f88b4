import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto'
import { NixcasError } from '../errors.ts'
import { formatNixHash, type NixHash } from './hash.ts'

// DER wrappers that turn raw ed25519 key bytes into keys node:crypto accepts.
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')
const KEY_NAME = /^[^:\s]+$/

export interface SecretKey {
  readonly name: string
  readonly privateKey: KeyObject
  readonly publicKey: PublicKey
  /** libsodium layout, as Nix stores it: 32-byte seed then 32-byte public key. */
  readonly raw: Uint8Array
}

export interface PublicKey {
  readonly name: string
  readonly key: KeyObject
  readonly raw: Uint8Array
}

export interface Signature {
  readonly keyName: string
  readonly bytes: Uint8Array
}

function splitNamed(text: string, what: string, code: 'BAD_KEY' | 'BAD_SIGNATURE'): { name: string; bytes: Buffer } {
  const trimmed = text.trim()
  const colon = trimmed.indexOf(':')
  const name = trimmed.slice(0, colon)
  const body = trimmed.slice(colon + 1)
  if (colon <= 0 || !KEY_NAME.test(name)) throw new NixcasError(code, `${what} must look like <name>:<base64>`)
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(body)) throw new NixcasError(code, `${what} ${JSON.stringify(name)} is not base64`)
  return { name, bytes: Buffer.from(body, 'base64') }
}

function publicKeyFromRaw(name: string, raw: Uint8Array): PublicKey {
  const key = createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, raw]), format: 'der', type: 'spki' })
  return { name, key, raw }
}

function rawPublicKey(key: KeyObject): Buffer {
  return key.export({ format: 'der', type: 'spki' }).subarray(SPKI_ED25519_PREFIX.length)
}

/** Reads a Nix secret key file's contents (`name:base64` of 64 bytes). */
export function parseSecretKey(text: string): SecretKey {
  const { name, bytes } = splitNamed(text, 'secret key', 'BAD_KEY')
  if (bytes.length !== 64) throw new NixcasError('BAD_KEY', `secret key ${JSON.stringify(name)} must hold 64 bytes, got ${bytes.length}`)
  const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, bytes.subarray(0, 32)]), format: 'der', type: 'pkcs8' })
  const derived = rawPublicKey(createPublicKey(privateKey))
  if (!derived.equals(bytes.subarray(32))) {
    throw new NixcasError('BAD_KEY', `secret key ${JSON.stringify(name)}: its public half does not match its seed`)
  }
  return { name, privateKey, publicKey: publicKeyFromRaw(name, derived), raw: bytes }
}

/** Reads a Nix public key (`name:base64` of 32 bytes), as in `trusted-public-keys`. */
export function parsePublicKey(text: string): PublicKey {
  const { name, bytes } = splitNamed(text, 'public key', 'BAD_KEY')
  if (bytes.length !== 32) throw new NixcasError('BAD_KEY', `public key ${JSON.stringify(name)} must hold 32 bytes, got ${bytes.length}`)
  try {
    return publicKeyFromRaw(name, bytes)
  } catch (cause) {
    throw new NixcasError('BAD_KEY', `public key ${JSON.stringify(name)} is not an ed25519 key`, { cause })
  }
}

export function formatSecretKey(key: SecretKey): string {
  return `${key.name}:${Buffer.from(key.raw).toString('base64')}`
}

export function formatPublicKey(key: PublicKey): string {
  return `${key.name}:${Buffer.from(key.raw).toString('base64')}`
}

export function generateSecretKey(name: string): SecretKey {
  if (!KEY_NAME.test(name)) throw new NixcasError('BAD_KEY', `key name ${JSON.stringify(name)} must be non-empty without ':' or white space`)
  const { privateKey } = generateKeyPairSync('ed25519')
  const seed = privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(PKCS8_ED25519_PREFIX.length)
  return parseSecretKey(`${name}:${Buffer.concat([seed, rawPublicKey(createPublicKey(privateKey))]).toString('base64')}`)
}

export function parseSignature(text: string): Signature {
  const { name, bytes } = splitNamed(text, 'signature', 'BAD_SIGNATURE')
  if (bytes.length !== 64) throw new NixcasError('BAD_SIGNATURE', `signature by ${JSON.stringify(name)} must hold 64 bytes, got ${bytes.length}`)
  return { keyName: name, bytes }
}

/** What Nix signs for a store path: `1;<path>;<narHash>;<narSize>;<refs>`, refs as full paths in sorted order. */
export function fingerprintPath(storePath: string, narHash: NixHash, narSize: number, referencePaths: readonly string[]): string {
  if (narHash.algorithm !== 'sha256') throw new NixcasError('BAD_HASH', 'a fingerprint needs a sha256 NAR hash')
  const refs = [...referencePaths].sort()
  return `1;${storePath};${formatNixHash(narHash)};${narSize};${refs.join(',')}`
}

export function signFingerprint(key: SecretKey, fingerprint: string): string {
  const bytes = sign(null, Buffer.from(fingerprint, 'utf8'), key.privateKey)
  return `${key.name}:${bytes.toString('base64')}`
}

/** True when `signature` is a valid signature of `fingerprint` by one of `keys` (matched by name, as Nix does). */
export function verifyFingerprint(keys: readonly PublicKey[], fingerprint: string, signature: string): boolean {
  let parsed: Signature
  try {
    parsed = parseSignature(signature)
  } catch {
    return false
  }
  const data = Buffer.from(fingerprint, 'utf8')
  return keys.some((key) => key.name === parsed.keyName && verify(null, data, key.key, parsed.bytes))
}

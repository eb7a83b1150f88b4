import { NixcasError, type ErrorCode } from '../errors.ts'
import { parseSignature } from './signing.ts'

/**
 * Small, strict readers for the JSON files Nix puts in a binary cache (`.doi`, `debuginfo/`),
 * and the one serialisation Nix uses for them. Nix serialises with nlohmann::json's `dump()`:
 * no white space, object keys in byte order (its objects are `std::map`s), `"`, `\` and
 * control characters escaped, everything else written as is. For the ASCII-only values these
 * files may hold, `JSON.stringify` of an object with sorted keys is the same byte string.
 */

export type JsonObject = Record<string, unknown>

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** Parses `text` as a JSON object, refusing anything else with `what` in the message. */
export function parseJsonObject(text: string, what: string, code: ErrorCode): JsonObject {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (cause) {
    throw new NixcasError(code, `${what} is not JSON: ${(cause as Error).message}`, { cause })
  }
  return asObject(value, what, code)
}

export function asObject(value: unknown, what: string, code: ErrorCode): JsonObject {
  if (!isObject(value)) throw new NixcasError(code, `${what} must be a JSON object`)
  return value
}

/**
 * Refuses fields outside `allowed` and missing `required` ones. Nix ignores unknown fields,
 * but a server re-renders what it stores, so an unknown field would be dropped silently
 * (and with it, any signature that covered it): better to say so at upload.
 */
export function checkFields(object: JsonObject, allowed: readonly string[], required: readonly string[], what: string, code: ErrorCode): void {
  for (const key of Object.keys(object)) {
    if (!allowed.includes(key)) throw new NixcasError(code, `${what} has an unknown field ${JSON.stringify(key.slice(0, 80))}`)
  }
  for (const key of required) {
    if (!Object.hasOwn(object, key)) throw new NixcasError(code, `${what} has no ${JSON.stringify(key)} field`)
  }
}

export function stringField(object: JsonObject, key: string, what: string, code: ErrorCode): string {
  const value = object[key]
  if (typeof value !== 'string') throw new NixcasError(code, `${what}: ${JSON.stringify(key)} must be a string`)
  return value
}

/** JSON as nlohmann::json's `dump()` writes it: compact, object keys sorted. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, inner: unknown) => {
    if (!isObject(inner)) return inner
    return Object.fromEntries(Object.keys(inner).sort().map((key) => [key, inner[key]]))
  })
}

export const DEFAULT_MAX_SIGNATURES = 32

/** Index of the first control character (below 0x20, or DEL) in `text`, or -1. */
export function controlCharacterIndex(text: string): number {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (code < 0x20 || code === 0x7f) return i
  }
  return -1
}

/**
 * Checks one `name:base64` signature (an ed25519 signature, as `signing.ts` reads it) and
 * returns it unchanged.
 */
export function checkSignatureText(text: string, what: string, code: ErrorCode): string {
  // Control characters have no place in a key name; they would survive JSON but break logs
  // and narinfo-style renderings of the same signature.
  if (controlCharacterIndex(text) >= 0) throw new NixcasError(code, `${what}: a signature holds a control character`)
  try {
    parseSignature(text)
  } catch (cause) {
    throw new NixcasError(code, `${what}: ${(cause as Error).message}`, { cause })
  }
  return text
}

/**
 * Reads a `signatures` array. Nix keeps signatures in a set, so duplicates collapse; the
 * bound applies to distinct signatures. `structured` also allows `{"keyName","sig"}` objects
 * (Nix ≥ 2.35 writes those, and reads both); they are returned as `name:base64` strings.
 */
export function parseSignatureArray(value: unknown, options: { max: number; structured: boolean; what: string; code: ErrorCode }): string[] {
  const { max, structured, what, code } = options
  if (!Array.isArray(value)) throw new NixcasError(code, `${what}: "signatures" must be an array`)
  const signatures = new Set<string>()
  for (const item of value as unknown[]) {
    let text: string
    if (typeof item === 'string') {
      text = item
    } else if (structured && isObject(item)) {
      checkFields(item, ['keyName', 'sig'], ['keyName', 'sig'], `${what}: a signature`, code)
      const keyName = stringField(item, 'keyName', `${what}: a signature`, code)
      const sig = stringField(item, 'sig', `${what}: a signature`, code)
      text = `${keyName}:${sig}`
    } else {
      throw new NixcasError(code, `${what}: a signature must be ${structured ? 'a "name:base64" string or {"keyName","sig"}' : 'a "name:base64" string'}`)
    }
    signatures.add(checkSignatureText(text, what, code))
    if (signatures.size > max) throw new NixcasError(code, `${what} carries more than ${max} signatures`)
  }
  return [...signatures]
}

import { NixcasError } from '../errors.ts'
import { formatDrvOutputId, parseDrvOutputId, type DrvOutputId } from './drv-output.ts'
import { signFingerprint, verifyFingerprint, type PublicKey, type SecretKey } from './signing.ts'
import { parseStorePathBase } from './store-path.ts'
import { canonicalJson, checkFields, DEFAULT_MAX_SIGNATURES, parseJsonObject, parseSignatureArray, stringField } from './strict-json.ts'

/**
 * Realisations as Nix ≤ 2.34 puts them in a binary cache: `realisations/<id>.doi`, holding
 *
 *     {"dependentRealisations":{…},"id":"sha256:<hex>!out","outPath":"<hash>-<name>","signatures":[…]}
 *
 * Nix writes `Realisation::toJSON().dump()` (nlohmann::json: keys sorted, no white space);
 * Nix 2.8 sends exactly that body with `Content-Type: application/json`, its
 * `dependentRealisations` mapping the ids of the derivation's CA inputs to their output
 * basenames; the last versions with this layout always write `{}` there ("back-compat"). Nix reads `id` and `outPath` as required,
 * `signatures` and `dependentRealisations` as optional.
 *
 * The signed fingerprint is the same JSON without `signatures` (`Realisation::fingerprint`:
 * `toJSON()`, `erase("signatures")`, `dump()`), so the dependent realisations are covered.
 */

export interface Realisation {
  readonly id: DrvOutputId
  /** Output store path basename, `<hash>-<name>`. */
  readonly outPath: string
  /** `name:base64`, distinct. */
  readonly signatures: readonly string[]
  /** Formatted drv output id → output basename. */
  readonly dependentRealisations: Readonly<Record<string, string>>
}

export interface RealisationLimits {
  /** Distinct signatures accepted (default 32). */
  maxSignatures?: number
  /** Entries accepted in `dependentRealisations` (default 4096: one per input derivation output). */
  maxDependencies?: number
}

export const DEFAULT_MAX_DEPENDENCIES = 4096

const FIELDS = ['id', 'outPath', 'signatures', 'dependentRealisations'] as const
const WHAT = 'realisation'

function bad(message: string, cause?: unknown): NixcasError {
  return new NixcasError('BAD_REALISATION', message, cause === undefined ? {} : { cause })
}

function checkBasename(value: string, what: string): string {
  try {
    parseStorePathBase(value)
  } catch (cause) {
    throw bad(`${what}: ${(cause as Error).message}`, cause)
  }
  return value
}

function parseDependencies(value: unknown, max: number): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad(`${WHAT}: "dependentRealisations" must be an object`)
  const entries = Object.entries(value as Record<string, unknown>)
  if (entries.length > max) throw bad(`${WHAT} has more than ${max} dependent realisations`)
  const dependencies: Record<string, string> = {}
  for (const [id, outPath] of entries) {
    const parsed = parseDrvOutputId(id)
    if (typeof outPath !== 'string') throw bad(`${WHAT}: dependent realisation ${id} must map to a store path basename`)
    dependencies[formatDrvOutputId(parsed)] = checkBasename(outPath, `${WHAT}: dependent realisation ${id}`)
  }
  return dependencies
}

/**
 * Parses a `.doi` body as Nix ≤ 2.34 writes it. `expected` is the id from the URL; the body's
 * `id` must be the same, so a realisation cannot be stored under another derivation's name.
 */
export function parseRealisation(text: string, expected: DrvOutputId, limits: RealisationLimits = {}): Realisation {
  const object = parseJsonObject(text, WHAT, 'BAD_REALISATION')
  checkFields(object, FIELDS, ['id', 'outPath'], WHAT, 'BAD_REALISATION')
  const id = parseDrvOutputId(stringField(object, 'id', WHAT, 'BAD_REALISATION'))
  if (formatDrvOutputId(id) !== formatDrvOutputId(expected)) {
    throw bad(`${WHAT} id ${formatDrvOutputId(id)} does not belong at ${formatDrvOutputId(expected)}.doi`)
  }
  const outPath = checkBasename(stringField(object, 'outPath', WHAT, 'BAD_REALISATION'), `${WHAT} outPath`)
  const signatures = Object.hasOwn(object, 'signatures')
    ? parseSignatureArray(object.signatures, { max: limits.maxSignatures ?? DEFAULT_MAX_SIGNATURES, structured: false, what: WHAT, code: 'BAD_REALISATION' })
    : []
  const dependentRealisations = Object.hasOwn(object, 'dependentRealisations')
    ? parseDependencies(object.dependentRealisations, limits.maxDependencies ?? DEFAULT_MAX_DEPENDENCIES)
    : {}
  return { id, outPath, signatures, dependentRealisations }
}

function toJson(realisation: Realisation, withSignatures: boolean): Record<string, unknown> {
  const json: Record<string, unknown> = {
    dependentRealisations: realisation.dependentRealisations,
    id: formatDrvOutputId(realisation.id),
    outPath: realisation.outPath,
  }
  // Nix keeps signatures in a std::set: sorted, distinct.
  if (withSignatures) json.signatures = [...new Set(realisation.signatures)].sort()
  return json
}

/** The body Nix ≤ 2.34 writes and reads, byte for byte. */
export function renderRealisation(realisation: Realisation): string {
  return canonicalJson(toJson(realisation, true))
}

/** What Nix signs: the realisation's JSON without `signatures`. */
export function realisationFingerprint(realisation: Realisation): string {
  return canonicalJson(toJson(realisation, false))
}

/** Adds one signature per key, replacing an older signature by the same key name. */
export function signRealisation(realisation: Realisation, keys: readonly SecretKey[]): Realisation {
  const fingerprint = realisationFingerprint(realisation)
  const names = new Set(keys.map((key) => key.name))
  const kept = realisation.signatures.filter((signature) => !names.has(signature.slice(0, signature.indexOf(':'))))
  return { ...realisation, signatures: [...kept, ...keys.map((key) => signFingerprint(key, fingerprint))] }
}

/** The signatures on `realisation` that one of `keys` made over its current contents. */
export function validRealisationSignatures(realisation: Realisation, keys: readonly PublicKey[]): string[] {
  const fingerprint = realisationFingerprint(realisation)
  return realisation.signatures.filter((signature) => verifyFingerprint(keys, fingerprint, signature))
}

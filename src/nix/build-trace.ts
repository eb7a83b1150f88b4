import { NixcasError } from '../errors.ts'
import { checkBuildTraceKey, outputPathName, type BuildTraceKey } from './drv-output.ts'
import { signFingerprint, verifyFingerprint, type PublicKey, type SecretKey } from './signing.ts'
import { parseStorePathBase } from './store-path.ts'
import { asObject, canonicalJson, checkFields, DEFAULT_MAX_SIGNATURES, parseJsonObject, parseSignatureArray, stringField, type JsonObject } from './strict-json.ts'

/**
 * Build trace entries as Nix ≥ 2.35 puts them in a binary cache:
 * `build-trace-v2/<drv basename>/<output>.doi`.
 *
 * A build trace entry is a key (`{"drvPath","outputName"}`) and a value
 * (`{"outPath","signatures"}`); its general JSON form is `{"key":…,"value":…}`. In the cache
 * the path carries the key and the file holds only the value: Nix's
 * `BinaryCacheStore::registerDrvOutput` uploads
 * `static_cast<nlohmann::json>(static_cast<const UnkeyedRealisation &>(info)).dump()`, i.e.
 *
 *     {"outPath":"<hash>-<name>","signatures":[{"keyName":"cache-1","sig":"<base64>"}]}
 *
 * and `queryRealisationUncached` parses the file as an `UnkeyedRealisation`. Store paths are
 * basenames (`StorePath`'s JSON form). Nix writes signatures as `{"keyName","sig"}` objects
 * and reads those or `name:base64` strings; `signatures` may be absent.
 *
 * This module reads either form (a keyed body must name the key of its URL) and always
 * renders the value, which is what every 2.35+ reader expects.
 *
 * The signed fingerprint (`UnkeyedRealisation::fingerprint`) is the keyed JSON with
 * `value.signatures` erased, dumped by nlohmann::json:
 *
 *     {"key":{"drvPath":"<hash>-<name>.drv","outputName":"out"},"value":{"outPath":"<hash>-<name>"}}
 */

export interface BuildTraceEntry {
  readonly key: BuildTraceKey
  /** Output store path basename. */
  readonly outPath: string
  /** `name:base64`, distinct. */
  readonly signatures: readonly string[]
}

export interface BuildTraceLimits {
  /** Distinct signatures accepted (default 32). */
  maxSignatures?: number
}

const WHAT = 'build trace entry'

function bad(message: string, cause?: unknown): NixcasError {
  return new NixcasError('BAD_REALISATION', message, cause === undefined ? {} : { cause })
}

function parseValue(value: JsonObject, key: BuildTraceKey, limits: BuildTraceLimits): BuildTraceEntry {
  // Nix's UnkeyedRealisation serialiser of the releases just before 2.35 still wrote an empty
  // `dependentRealisations` ("back-compat"); tolerate exactly that and nothing more.
  checkFields(value, ['outPath', 'signatures', 'dependentRealisations'], ['outPath'], WHAT, 'BAD_REALISATION')
  if (Object.hasOwn(value, 'dependentRealisations')) {
    const dependencies = value.dependentRealisations
    if (typeof dependencies !== 'object' || dependencies === null || Array.isArray(dependencies) || Object.keys(dependencies).length > 0) {
      throw bad(`${WHAT}: "dependentRealisations" was removed from this format; only an empty object is tolerated`)
    }
  }
  const outPath = stringField(value, 'outPath', WHAT, 'BAD_REALISATION')
  let name: string
  try {
    name = parseStorePathBase(outPath).name
  } catch (cause) {
    throw bad(`${WHAT} outPath: ${(cause as Error).message}`, cause)
  }
  // Nix names every derivation output `<drv name>` (out) or `<drv name>-<output>`.
  const expectedName = outputPathName(key)
  if (name !== expectedName) throw bad(`${WHAT} outPath ${outPath} is not named ${expectedName}, as output ${key.outputName} of ${key.drvPath} must be`)
  const signatures = Object.hasOwn(value, 'signatures')
    ? parseSignatureArray(value.signatures, { max: limits.maxSignatures ?? DEFAULT_MAX_SIGNATURES, structured: true, what: WHAT, code: 'BAD_REALISATION' })
    : []
  return { key, outPath, signatures }
}

/**
 * Parses a `.doi` body under `build-trace-v2/`. `expected` is the key from the URL; a body in
 * the keyed form must carry the same key.
 */
export function parseBuildTraceEntry(text: string, expected: BuildTraceKey, limits: BuildTraceLimits = {}): BuildTraceEntry {
  checkBuildTraceKey(expected)
  const object = parseJsonObject(text, WHAT, 'BAD_REALISATION')
  if (!Object.hasOwn(object, 'key') && !Object.hasOwn(object, 'value')) return parseValue(object, expected, limits)
  checkFields(object, ['key', 'value'], ['key', 'value'], WHAT, 'BAD_REALISATION')
  const keyObject = asObject(object.key, `${WHAT} key`, 'BAD_REALISATION')
  checkFields(keyObject, ['drvPath', 'outputName'], ['drvPath', 'outputName'], `${WHAT} key`, 'BAD_REALISATION')
  const drvPath = stringField(keyObject, 'drvPath', `${WHAT} key`, 'BAD_REALISATION')
  const outputName = stringField(keyObject, 'outputName', `${WHAT} key`, 'BAD_REALISATION')
  if (drvPath !== expected.drvPath || outputName !== expected.outputName) {
    throw bad(`${WHAT} key ${drvPath}^${outputName} does not belong at ${expected.drvPath}/${expected.outputName}.doi`)
  }
  return parseValue(asObject(object.value, `${WHAT} value`, 'BAD_REALISATION'), expected, limits)
}

function splitSignature(signature: string): { keyName: string; sig: string } {
  const colon = signature.indexOf(':')
  return { keyName: signature.slice(0, colon), sig: signature.slice(colon + 1) }
}

/** Nix's order for a `std::set<Signature>`: by key name, then by the raw signature bytes. */
function sortedSignatures(signatures: readonly string[]): { keyName: string; sig: string }[] {
  return [...new Set(signatures)].map(splitSignature).sort((a, b) => {
    if (a.keyName !== b.keyName) return a.keyName < b.keyName ? -1 : 1
    return Buffer.compare(Buffer.from(a.sig, 'base64'), Buffer.from(b.sig, 'base64'))
  })
}

/** The file body: the entry's value, as Nix ≥ 2.35 writes and reads it. */
export function renderBuildTraceValue(entry: BuildTraceEntry): string {
  return canonicalJson({ outPath: entry.outPath, signatures: sortedSignatures(entry.signatures) })
}

/** The keyed form (`{"key","value"}`), as Nix's JSON interfaces print an entry. */
export function renderBuildTraceEntry(entry: BuildTraceEntry): string {
  return canonicalJson({ key: entry.key, value: { outPath: entry.outPath, signatures: sortedSignatures(entry.signatures) } })
}

/** What Nix signs: the keyed JSON without `value.signatures`. */
export function buildTraceFingerprint(entry: BuildTraceEntry): string {
  return canonicalJson({ key: { drvPath: entry.key.drvPath, outputName: entry.key.outputName }, value: { outPath: entry.outPath } })
}

/** Adds one signature per key, replacing an older signature by the same key name. */
export function signBuildTraceEntry(entry: BuildTraceEntry, keys: readonly SecretKey[]): BuildTraceEntry {
  const fingerprint = buildTraceFingerprint(entry)
  const names = new Set(keys.map((key) => key.name))
  const kept = entry.signatures.filter((signature) => !names.has(splitSignature(signature).keyName))
  return { ...entry, signatures: [...kept, ...keys.map((key) => signFingerprint(key, fingerprint))] }
}

/** The signatures on `entry` that one of `keys` made over its current contents. */
export function validBuildTraceSignatures(entry: BuildTraceEntry, keys: readonly PublicKey[]): string[] {
  const fingerprint = buildTraceFingerprint(entry)
  return entry.signatures.filter((signature) => verifyFingerprint(keys, fingerprint, signature))
}

import { NixcasError } from '../errors.ts'
import { parseStorePathBase, STORE_PATH_NAME_MAX } from './store-path.ts'

/**
 * Names of derivation outputs and of the two binary-cache layouts Nix uses to publish what
 * a content-addressed derivation's output turned out to be:
 *
 * - Nix ≤ 2.34 writes `realisations/<drv hash>!<output>.doi`, the drv hash being the
 *   derivation's "hash modulo" printed as `sha256:` and 64 lowercase hex digits
 *   (`DrvOutput::to_string`, `strHash() + "!" + outputName`).
 * - Nix ≥ 2.35 writes `build-trace-v2/<drv basename>/<output>.doi`
 *   (`BinaryCacheStore::makeRealisationPath`: `realisationsPrefix + "/" +
 *   id.drvPath.to_string() + "/" + id.outputName + ".doi"`), the drv basename being
 *   `<hash>-<name>.drv`.
 *
 * Both name parsers accept only what Nix itself can produce, so a valid name never holds a
 * `/` beyond the one separator, a `..` segment, a NUL or anything else that could escape a
 * storage prefix.
 */

export const REALISATIONS_PREFIX = 'realisations'
export const BUILD_TRACE_PREFIX = 'build-trace-v2'
export const DOI_SUFFIX = '.doi'

/** A derivation output as Nix ≤ 2.34 identifies it: `sha256:<64 hex>!<output>`. */
export interface DrvOutputId {
  /** 64 lowercase hex digits of the derivation's sha256 hash modulo. */
  readonly drvHash: string
  readonly outputName: string
}

/** A derivation output as Nix ≥ 2.35 identifies it: the derivation's store path and an output name. */
export interface BuildTraceKey {
  /** `<hash>-<name>.drv`, without the store directory. */
  readonly drvPath: string
  readonly outputName: string
}

const OUTPUT_NAME_CHARS = /^[A-Za-z0-9+\-._?=]+$/

function bad(message: string): NixcasError {
  return new NixcasError('BAD_REALISATION', message)
}

/**
 * Output names follow Nix's store path name rules (`checkName`: at most 211 characters from
 * `[A-Za-z0-9+-._?=]`, not `.` or `..` and not starting with `.-` or `..-`), since Nix turns
 * them into store path names (`<drv name>-<output>`). `drv` is refused as Nix's evaluator does
 * ("invalid derivation output name 'drv'"): it would clash with the `drvPath` attribute.
 */
export function checkOutputName(name: string): void {
  if (name.length === 0) throw bad('output name is empty')
  if (name.length > STORE_PATH_NAME_MAX) throw bad(`output name is longer than ${STORE_PATH_NAME_MAX} characters`)
  if (!OUTPUT_NAME_CHARS.test(name)) throw bad(`output name ${JSON.stringify(name.slice(0, 80))} has a character outside [A-Za-z0-9+-._?=]`)
  if (name === '.' || name === '..' || name.startsWith('.-') || name.startsWith('..-')) {
    throw bad(`output name ${JSON.stringify(name)} is not a valid store path name`)
  }
  if (name === 'drv') throw bad('output name "drv" is reserved by Nix')
}

const DRV_OUTPUT_ID = /^sha256:([0-9a-f]{64})!(.*)$/s

/** Parses `sha256:<64 lowercase hex>!<output>`, the form Nix ≤ 2.34 writes in `id` and in file names. */
export function parseDrvOutputId(text: string): DrvOutputId {
  const match = DRV_OUTPUT_ID.exec(text)
  if (match === null) throw bad(`${JSON.stringify(text.slice(0, 120))} is not sha256:<64 lowercase hex>!<output>`)
  const [, drvHash = '', outputName = ''] = match
  checkOutputName(outputName)
  return { drvHash, outputName }
}

export function formatDrvOutputId(id: DrvOutputId): string {
  return `sha256:${id.drvHash}!${id.outputName}`
}

/** Checks that `drvPath` is a derivation's store path basename, `<hash>-<name>.drv`. */
export function checkDrvPath(drvPath: string): void {
  try {
    parseStorePathBase(drvPath)
  } catch (error) {
    throw new NixcasError('BAD_REALISATION', `derivation path ${JSON.stringify(drvPath.slice(0, 120))}: ${(error as Error).message}`, { cause: error })
  }
  if (!drvPath.endsWith('.drv')) {
    throw bad(`${JSON.stringify(drvPath)} is not a derivation (<hash>-<name>.drv)`)
  }
}

export function checkBuildTraceKey(key: BuildTraceKey): void {
  checkDrvPath(key.drvPath)
  checkOutputName(key.outputName)
}

/**
 * The store path name a derivation output gets (Nix's `outputPathName`): the derivation's
 * name for `out`, `<name>-<output>` otherwise.
 */
export function outputPathName(key: BuildTraceKey): string {
  const drvName = key.drvPath.slice(33, -'.drv'.length)
  return key.outputName === 'out' ? drvName : `${drvName}-${key.outputName}`
}

/** Parses the name under `realisations/`: `sha256:<hex>!<output>.doi`. */
export function parseRealisationName(name: string): DrvOutputId {
  if (!name.endsWith(DOI_SUFFIX)) throw bad(`realisation name ${JSON.stringify(name.slice(0, 120))} does not end in ${DOI_SUFFIX}`)
  return parseDrvOutputId(name.slice(0, -DOI_SUFFIX.length))
}

export function realisationName(id: DrvOutputId): string {
  return `${formatDrvOutputId(id)}${DOI_SUFFIX}`
}

/** Parses the name under `build-trace-v2/`: `<hash>-<name>.drv/<output>.doi`. */
export function parseBuildTraceName(name: string): BuildTraceKey {
  const parts = name.split('/')
  if (parts.length !== 2) throw bad(`build trace name ${JSON.stringify(name.slice(0, 120))} is not <drv>/<output>${DOI_SUFFIX}`)
  const [drvPath = '', file = ''] = parts
  if (!file.endsWith(DOI_SUFFIX)) throw bad(`build trace name ${JSON.stringify(name.slice(0, 120))} does not end in ${DOI_SUFFIX}`)
  const key = { drvPath, outputName: file.slice(0, -DOI_SUFFIX.length) }
  checkBuildTraceKey(key)
  return key
}

export function buildTraceName(key: BuildTraceKey): string {
  return `${key.drvPath}/${key.outputName}${DOI_SUFFIX}`
}

export type DoiPath =
  | { readonly layout: 'realisations'; readonly id: DrvOutputId }
  | { readonly layout: 'build-trace-v2'; readonly key: BuildTraceKey }

/**
 * Parses a URL path relative to the cache root (already percent-decoded, no leading `/`):
 * `realisations/<id>.doi` or `build-trace-v2/<drv>/<output>.doi`.
 */
export function parseDoiPath(path: string): DoiPath {
  if (path.startsWith(`${REALISATIONS_PREFIX}/`)) return { layout: 'realisations', id: parseRealisationName(path.slice(REALISATIONS_PREFIX.length + 1)) }
  if (path.startsWith(`${BUILD_TRACE_PREFIX}/`)) return { layout: 'build-trace-v2', key: parseBuildTraceName(path.slice(BUILD_TRACE_PREFIX.length + 1)) }
  throw bad(`${JSON.stringify(path.slice(0, 120))} is under neither ${REALISATIONS_PREFIX}/ nor ${BUILD_TRACE_PREFIX}/`)
}

export function formatDoiPath(path: DoiPath): string {
  return path.layout === 'realisations' ? `${REALISATIONS_PREFIX}/${realisationName(path.id)}` : `${BUILD_TRACE_PREFIX}/${buildTraceName(path.key)}`
}

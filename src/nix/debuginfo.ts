import { NixcasError } from '../errors.ts'
import { isNixbase32 } from './nixbase32.ts'
import { canonicalJson, checkFields, parseJsonObject, stringField } from './strict-json.ts'

/**
 * The debug info index Nix writes with `index-debug-info=true` (for dwarffs and similar).
 *
 * For every regular file `lib/debug/.build-id/<xx>/<rest>.debug` of a NAR, where `<xx>`
 * matches `^[0-9a-f]{2}$` and `<rest>.debug` matches `^[0-9a-f]{38}\.debug$`, Nix
 * (`BinaryCacheStore::addToStoreCommon`) uploads `debuginfo/<xx><rest>.debug`, skipping it
 * when a HEAD says it exists, with `Content-Type: application/json` and the body
 *
 *     {"archive":"../nar/<file hash>.nar.xz","member":"lib/debug/.build-id/<xx>/<rest>.debug"}
 *
 * (nlohmann::json `dump()`: keys sorted, no white space). The file name keeps the `.debug`
 * suffix: Nix builds it as `s1 + s2` from the two directory entries. `archive` is `"../"`
 * plus the narinfo URL Nix chose, `nar/<nixbase32 file hash>.nar` and the extension of its
 * compression (`.xz`, `.bz2`, `.zst`, `.lzip`, `.lz4`, `.br`, none).
 */

/** A GNU build-id as Nix indexes it: 20 bytes (the usual SHA-1 build-id), 40 lowercase hex digits. */
export const BUILD_ID_HEX_LENGTH = 40

export interface DebugInfo {
  /** Relative to the `debuginfo/` directory: `../nar/<hash>.nar[.ext]`. */
  readonly archive: string
  /** Path of the debug file inside the NAR, without a leading `/`. */
  readonly member: string
}

const NAME = /^([0-9a-f]{40})\.debug$/
const ARCHIVE = /^\.\.\/(nar\/([0-9a-z]{52})\.nar(?:\.(?:xz|bz2|zst|lzip|lz4|br))?)$/
const WHAT = 'debuginfo'

function bad(message: string): NixcasError {
  return new NixcasError('BAD_DEBUGINFO', message)
}

/** Parses the name under `debuginfo/` (`<40 hex>.debug`) and returns the build-id. */
export function parseDebugInfoName(name: string): string {
  const match = NAME.exec(name)
  if (match === null) throw bad(`debuginfo name ${JSON.stringify(name.slice(0, 120))} is not <${BUILD_ID_HEX_LENGTH} lowercase hex digits>.debug`)
  return match[1] ?? ''
}

export function debugInfoName(buildId: string): string {
  return `${buildId}.debug`
}

/** Where Nix's index says the debug file of `buildId` is inside the NAR. */
export function debugInfoMember(buildId: string): string {
  return `lib/debug/.build-id/${buildId.slice(0, 2)}/${buildId.slice(2)}.debug`
}

/**
 * Parses a `debuginfo/<build-id>.debug` body. With `buildId` (from the URL), the member must be
 * that build-id's file, so one entry cannot be stored under another's name.
 */
export function parseDebugInfo(text: string, buildId?: string): DebugInfo {
  const object = parseJsonObject(text, WHAT, 'BAD_DEBUGINFO')
  checkFields(object, ['archive', 'member'], ['archive', 'member'], WHAT, 'BAD_DEBUGINFO')
  const archive = stringField(object, 'archive', WHAT, 'BAD_DEBUGINFO')
  const member = stringField(object, 'member', WHAT, 'BAD_DEBUGINFO')
  const match = ARCHIVE.exec(archive)
  if (match === null || !isNixbase32(match[2] ?? '')) {
    throw bad(`debuginfo archive ${JSON.stringify(archive.slice(0, 120))} is not ../nar/<nixbase32 hash>.nar[.xz|.bz2|.zst|.lzip|.lz4|.br]`)
  }
  const memberMatch = /^lib\/debug\/\.build-id\/([0-9a-f]{2})\/([0-9a-f]{38})\.debug$/.exec(member)
  if (memberMatch === null) throw bad(`debuginfo member ${JSON.stringify(member.slice(0, 120))} is not lib/debug/.build-id/<2 hex>/<38 hex>.debug`)
  if (buildId !== undefined && member !== debugInfoMember(buildId)) {
    throw bad(`debuginfo member ${member} is not the file of build-id ${buildId}`)
  }
  return { archive, member }
}

/** The body Nix writes, byte for byte. */
export function renderDebugInfo(info: DebugInfo): string {
  return canonicalJson({ archive: info.archive, member: info.member })
}

/** The NAR URL the entry points at, relative to the cache root (`nar/<hash>.nar[.ext]`). */
export function debugInfoNarUrl(info: DebugInfo): string {
  return info.archive.slice('../'.length)
}

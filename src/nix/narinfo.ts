import { NixcasError } from '../errors.ts'
import { formatNixHash, parseNixHash, type NixHash } from './hash.ts'
import { isNixbase32 } from './nixbase32.ts'
import { parseSignature } from './signing.ts'
import { DEFAULT_STORE_DIR, parseStorePath, parseStorePathBase } from './store-path.ts'
import { controlCharacterIndex, DEFAULT_MAX_SIGNATURES } from './strict-json.ts'

/** Everything a `.narinfo` file says, references and deriver as basenames (`<hash>-<name>`). */
export interface NarInfo {
  storePath: string
  url: string
  compression: string
  fileHash?: NixHash
  fileSize?: number
  narHash: NixHash
  narSize: number
  references: string[]
  deriver?: string
  system?: string
  signatures: string[]
  ca?: string
}

export interface NarInfoParseOptions {
  /** Distinct `Sig:` lines accepted (default 32); more is refused, not truncated. */
  maxSignatures?: number
}

const SINGLE_FIELDS = new Set([
  'StorePath', 'URL', 'Compression', 'FileHash', 'FileSize', 'NarHash', 'NarSize', 'References', 'Deriver', 'System', 'CA',
])

function parseSize(value: string, what: string): number {
  if (!/^[0-9]{1,16}$/.test(value)) throw new NixcasError('BAD_NARINFO', `${what} ${JSON.stringify(value)} is not a non-negative integer`)
  const size = Number(value)
  if (!Number.isSafeInteger(size)) throw new NixcasError('BAD_NARINFO', `${what} ${value} is too large`)
  return size
}

// Digest lengths of the algorithms Nix content-addresses with (blake3 behind an
// experimental feature, so a narinfo may carry it).
const CA_HASH_BYTES: Record<string, number> = { md5: 16, sha1: 20, sha256: 32, sha512: 64, blake3: 32 }

function caDigestOk(algorithm: string, digest: string): boolean {
  const bytes = CA_HASH_BYTES[algorithm]
  if (bytes === undefined) return false
  if (digest.length === bytes * 2 && /^[0-9a-f]+$/.test(digest)) return true
  if (digest.length === Math.ceil((bytes * 8) / 5) && isNixbase32(digest)) return true
  return digest.length === Math.ceil(bytes / 3) * 4 && /^[A-Za-z0-9+/]+={0,2}$/.test(digest) && Buffer.from(digest, 'base64').length === bytes
}

/**
 * A content address as Nix parses it (`ContentAddress::parse`): `text:sha256:<digest>` or
 * `fixed:[r:|git:]<algo>:<digest>`, the digest in base16, nixbase32 or base64 of the
 * algorithm's length.
 */
function parseCa(value: string): string {
  const match = /^(?:text:(sha256)|fixed:(?:r:|git:)?(md5|sha1|sha256|sha512|blake3)):([0-9a-zA-Z+/=]+)$/.exec(value)
  if (match === null || !caDigestOk(match[1] ?? match[2] ?? '', match[3] ?? '')) {
    throw new NixcasError('BAD_NARINFO', `CA ${JSON.stringify(value.slice(0, 120))} is not a content address`)
  }
  return value
}

/**
 * Parses a narinfo as Nix writes it. Unknown keys are ignored (Nix does the same, and
 * newer clients add fields); anything malformed is refused with the line that holds it.
 *
 * What Nix's own parser (`NarInfo::NarInfo`) refuses is refused here too: a last line
 * without `\n`, a second `References:` or `CA:` line, a missing or unparsable StorePath,
 * URL, NarHash or NarSize, NarSize 0, bad hashes, sizes and store paths. Beyond that, and
 * because what is accepted is stored and served to every client: control characters (below
 * 0x20 other than the line separator, and DEL) anywhere, a repeated field, a malformed
 * `Sig:`, and more than `maxSignatures` distinct signatures. Like Nix, repeated `Sig:` and
 * `References` entries collapse (Nix keeps sets), and an empty `CA:` means none.
 */
export function parseNarInfo(text: string, storeDir: string = DEFAULT_STORE_DIR, options: NarInfoParseOptions = {}): NarInfo {
  const maxSignatures = options.maxSignatures ?? DEFAULT_MAX_SIGNATURES
  const fields = new Map<string, { value: string; line: number }>()
  const signatures = new Set<string>()
  const lines = text.split('\n')
  if (lines.at(-1) !== '') {
    const last = lines.length
    throw new NixcasError('BAD_NARINFO', `narinfo line ${last} does not end in a newline (Nix refuses such a narinfo)`)
  }
  lines.pop()
  lines.forEach((line, index) => {
    const where = `narinfo line ${index + 1}`
    const control = controlCharacterIndex(line)
    if (control >= 0) {
      const code = line.charCodeAt(control).toString(16).padStart(2, '0')
      throw new NixcasError('BAD_NARINFO', `${where}: control character 0x${code} at column ${control + 1}`)
    }
    const colon = line.indexOf(': ')
    if (colon <= 0) throw new NixcasError('BAD_NARINFO', `${where}: expected "Key: value", got ${JSON.stringify(line.slice(0, 80))}`)
    const key = line.slice(0, colon)
    const value = line.slice(colon + 2)
    try {
      if (key === 'Sig') {
        parseSignature(value)
        signatures.add(value)
        if (signatures.size > maxSignatures) throw new NixcasError('BAD_NARINFO', `more than ${maxSignatures} signatures`)
      } else if (SINGLE_FIELDS.has(key)) {
        if (fields.has(key)) throw new NixcasError('BAD_NARINFO', `${key} appears twice`)
        fields.set(key, { value, line: index + 1 })
      }
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error)
      throw new NixcasError('BAD_NARINFO', `${where} (${key}): ${message}`, { cause: error })
    }
  })

  const field = <T>(key: string, parse: (value: string) => T): T | undefined => {
    const entry = fields.get(key)
    if (entry === undefined) return undefined
    try {
      return parse(entry.value)
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error)
      throw new NixcasError('BAD_NARINFO', `narinfo line ${entry.line} (${key}): ${message}`, { cause: error })
    }
  }
  const required = <T>(key: string, parse: (value: string) => T): T => {
    const value = field(key, parse)
    if (value === undefined) throw new NixcasError('BAD_NARINFO', `narinfo has no ${key} line`)
    return value
  }

  const storePath = required('StorePath', (value) => {
    parseStorePath(value, storeDir)
    return value
  })
  const url = required('URL', (value) => {
    if (value.length === 0 || /\s/.test(value)) throw new NixcasError('BAD_NARINFO', `URL ${JSON.stringify(value)} is empty or has white space`)
    return value
  })
  const narHash = required('NarHash', (value) => parseNixHash(value, 'sha256'))
  const narSize = required('NarSize', (value) => {
    const size = parseSize(value, 'NarSize')
    if (size === 0) throw new NixcasError('BAD_NARINFO', 'NarSize must be positive')
    return size
  })
  const references =
    field('References', (value) => [
      ...new Set(
        value
          .split(' ')
          .filter((ref) => ref.length > 0)
          .map((ref) => {
            parseStorePathBase(ref)
            return ref
          }),
      ),
    ]) ?? []
  const info: NarInfo = {
    storePath,
    url,
    // A narinfo without Compression means bzip2 to Nix.
    compression: field('Compression', (value) => {
      if (!/^[a-z0-9-]+$/.test(value)) throw new NixcasError('BAD_NARINFO', `Compression ${JSON.stringify(value)} is not a method name`)
      return value
    }) ?? 'bzip2',
    narHash,
    narSize,
    references,
    signatures: [...signatures],
  }
  const fileHash = field('FileHash', (value) => parseNixHash(value))
  if (fileHash) info.fileHash = fileHash
  const fileSize = field('FileSize', (value) => parseSize(value, 'FileSize'))
  if (fileSize !== undefined) info.fileSize = fileSize
  const deriver = field('Deriver', (value) => {
    if (value === 'unknown-deriver') return undefined
    parseStorePathBase(value)
    return value
  })
  if (deriver !== undefined) info.deriver = deriver
  const system = field('System', (value) => value)
  if (system !== undefined) info.system = system
  const ca = field('CA', (value) => (value === '' ? undefined : parseCa(value)))
  if (ca !== undefined) info.ca = ca
  return info
}

/** Renders in Nix's own field order; `Compression:` is always written (absent means bzip2 to Nix). */
export function renderNarInfo(info: NarInfo): string {
  let out = `StorePath: ${info.storePath}\nURL: ${info.url}\nCompression: ${info.compression}\n`
  if (info.fileHash) out += `FileHash: ${formatNixHash(info.fileHash)}\n`
  if (info.fileSize !== undefined) out += `FileSize: ${info.fileSize}\n`
  out += `NarHash: ${formatNixHash(info.narHash)}\nNarSize: ${info.narSize}\n`
  out += `References: ${info.references.join(' ')}\n`
  if (info.deriver !== undefined) out += `Deriver: ${info.deriver}\n`
  if (info.system !== undefined) out += `System: ${info.system}\n`
  for (const signature of info.signatures) out += `Sig: ${signature}\n`
  if (info.ca !== undefined) out += `CA: ${info.ca}\n`
  return out
}

/**
 * The one table of compression methods nixcas knows, under each of the three names the
 * world gives them: the suffix of a NAR file (`nar/<hash>.nar.xz`), the HTTP
 * `Content-Encoding` token of an upload, and the narinfo `Compression:` value.
 */

/** A compression method, named as in a narinfo's `Compression:` line. */
export type CodecMethod = 'none' | 'xz' | 'zstd' | 'bzip2' | 'br' | 'gzip' | 'deflate'

interface MethodNames {
  /** Suffix after `.nar`; undefined when Nix never names a NAR file this way. */
  readonly suffix: string | undefined
  /** Content-Encoding tokens, lower case, the canonical one first. */
  readonly contentEncodings: readonly string[]
  /** Whether a narinfo may say `Compression: <method>`. */
  readonly narinfo: boolean
}

/**
 * Nix names a NAR `<filehash>.nar` + `.xz`, `.bz2`, `.zst`, `.br` (and `.lz4`, `.lzip`, which
 * nixcas does not decode); with `compression=gzip` it writes a plain `.nar` name, so `.nar.gz`
 * is never produced by Nix and is not accepted here. `deflate` exists only as an HTTP coding
 * (zlib-wrapped, RFC 9110), never in a narinfo.
 */
const METHODS: Record<CodecMethod, MethodNames> = {
  none: { suffix: '', contentEncodings: ['identity'], narinfo: true },
  xz: { suffix: '.xz', contentEncodings: ['xz', 'x-xz'], narinfo: true },
  zstd: { suffix: '.zst', contentEncodings: ['zstd'], narinfo: true },
  bzip2: { suffix: '.bz2', contentEncodings: ['bzip2', 'x-bzip2'], narinfo: true },
  br: { suffix: '.br', contentEncodings: ['br'], narinfo: true },
  gzip: { suffix: undefined, contentEncodings: ['gzip', 'x-gzip'], narinfo: true },
  deflate: { suffix: undefined, contentEncodings: ['deflate'], narinfo: false },
}

export const CODEC_METHODS = Object.keys(METHODS) as CodecMethod[]

export function isCodecMethod(value: string): value is CodecMethod {
  return Object.hasOwn(METHODS, value)
}

/** The NAR file suffix for a method (`.nar.xz`), or undefined when Nix has none for it. */
export function narSuffix(method: CodecMethod): string | undefined {
  const suffix = METHODS[method].suffix
  return suffix === undefined ? undefined : `.nar${suffix}`
}

const BY_SUFFIX = new Map<string, CodecMethod>(
  CODEC_METHODS.flatMap((method) => {
    const suffix = narSuffix(method)
    return suffix === undefined ? [] : [[suffix, method] as const]
  }),
)

/** Splits `<stem>.nar[.xz|.zst|.bz2|.br]`; undefined for any other name. */
export function parseNarFileName(name: string): { stem: string; compression: CodecMethod } | undefined {
  const match = /^([A-Za-z0-9_-]{1,128})(\.nar(?:\.[a-z0-9]{1,4})?)$/.exec(name)
  const compression = match?.[2] === undefined ? undefined : BY_SUFFIX.get(match[2])
  return match && compression ? { stem: match[1] as string, compression } : undefined
}

const BY_CONTENT_ENCODING = new Map<string, CodecMethod>(
  CODEC_METHODS.flatMap((method) => METHODS[method].contentEncodings.map((token) => [token, method] as const)),
)

/**
 * The method of an upload's `Content-Encoding` header: absent or empty is `none`, one known
 * token (case-insensitive) is its method. Undefined for anything else, including a list of
 * several codings, which nixcas does not stack: the route answers 415.
 */
export function methodFromContentEncoding(header: string | undefined): CodecMethod | undefined {
  const token = (header ?? '').trim().toLowerCase()
  return token === '' ? 'none' : BY_CONTENT_ENCODING.get(token)
}

/** The canonical Content-Encoding token for a method (`identity` for none). */
export function contentEncodingOf(method: CodecMethod): string {
  return METHODS[method].contentEncodings[0] as string
}

/**
 * The method of a narinfo's `Compression:` value. A missing line means bzip2 to Nix, so
 * undefined maps to bzip2; an unknown value is undefined.
 */
export function methodFromNarinfo(value: string | undefined): CodecMethod | undefined {
  if (value === undefined) return 'bzip2'
  return isCodecMethod(value) && METHODS[value].narinfo ? value : undefined
}

/** The narinfo `Compression:` value of a method; undefined for an HTTP-only coding. */
export function narinfoCompressionOf(method: CodecMethod): string | undefined {
  return METHODS[method].narinfo ? method : undefined
}

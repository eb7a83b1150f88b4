import { brotliCompressSync, constants, createBrotliCompress, createGzip, gzipSync } from 'node:zlib'
import * as zlib from 'node:zlib'
import type { Transform } from 'node:stream'

export type ContentEncoding = 'zstd' | 'br' | 'gzip'

type ZstdZlib = { createZstdCompress?: () => Transform; zstdCompressSync?: (bytes: Uint8Array) => Buffer }
const zstd = zlib as unknown as ZstdZlib
/** zstd where this Node has it (22.15 and later); br and gzip everywhere. */
const AVAILABLE: ContentEncoding[] = zstd.createZstdCompress ? ['zstd', 'br', 'gzip'] : ['br', 'gzip']

/** The best encoding the client accepts (q > 0), in our order of preference. */
export function negotiateEncoding(acceptEncoding: string | undefined): ContentEncoding | undefined {
  if (!acceptEncoding) return undefined
  const accepted = new Map<string, number>()
  for (const part of acceptEncoding.split(',')) {
    const [name = '', ...params] = part.trim().toLowerCase().split(';')
    const q = params.map((param) => /^\s*q=([\d.]+)\s*$/.exec(param)?.[1]).find((value) => value !== undefined)
    accepted.set(name.trim(), q === undefined ? 1 : Number(q))
  }
  return AVAILABLE.find((encoding) => (accepted.get(encoding) ?? accepted.get('*') ?? 0) > 0)
}

/** Fast settings: compression must not become the bottleneck of serving a NAR. */
export function compressStream(encoding: ContentEncoding): Transform {
  if (encoding === 'zstd' && zstd.createZstdCompress) return zstd.createZstdCompress()
  if (encoding === 'br') return createBrotliCompress({ params: { [constants.BROTLI_PARAM_QUALITY]: 3 } })
  return createGzip({ level: 1 })
}

export function compressBytes(bytes: Uint8Array, encoding: ContentEncoding): Buffer {
  if (encoding === 'zstd' && zstd.zstdCompressSync) return zstd.zstdCompressSync(bytes)
  if (encoding === 'br') return brotliCompressSync(bytes, { params: { [constants.BROTLI_PARAM_QUALITY]: 5 } })
  return gzipSync(bytes, { level: 6 })
}

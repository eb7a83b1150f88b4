import { NixcasError } from '../errors.ts'
import { DIGEST_SIZE, type Digest } from './digest.ts'

/**
 * The manifest of a blob stored as several chunks, version 1 (little-endian):
 *   magic "NCB1", count u32, then per chunk: digest (32 bytes), size u32.
 */
export const MANIFEST_MAGIC = Buffer.from('NCB1')

/** Where a chunk's bytes are: a range of a data pack. */
export interface ChunkLocation {
  readonly pack: Digest
  readonly offset: number
}

/**
 * A chunk of a file: its digest and size, and where it is stored when it lives in a data
 * pack (stores written before packs keep each chunk as an object of its own, keyed by digest).
 */
export interface ChunkRef {
  readonly digest: Digest
  readonly size: number
  readonly location?: ChunkLocation
}

export function encodeManifest(chunks: readonly ChunkRef[]): Buffer {
  const out = Buffer.allocUnsafe(8 + chunks.length * (DIGEST_SIZE + 4))
  MANIFEST_MAGIC.copy(out, 0)
  out.writeUInt32LE(chunks.length, 4)
  let offset = 8
  for (const chunk of chunks) {
    offset += chunk.digest.copy(out, offset)
    out.writeUInt32LE(chunk.size, offset)
    offset += 4
  }
  return out
}

/** Decodes a manifest and, given `size`, checks that its chunks add up to it. */
export function decodeManifest(bytes: Uint8Array, size?: number): ChunkRef[] {
  const data = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const corrupt = (message: string): never => {
    throw new NixcasError('CORRUPT_OBJECT', `blob manifest: ${message}`)
  }
  if (data.length < 8 || !data.subarray(0, 4).equals(MANIFEST_MAGIC)) corrupt('bad magic')
  const count = data.readUInt32LE(4)
  if (count === 0 || data.length !== 8 + count * (DIGEST_SIZE + 4)) corrupt('wrong length')
  const chunks: ChunkRef[] = []
  for (let offset = 8; offset < data.length; offset += DIGEST_SIZE + 4) {
    const chunkSize = data.readUInt32LE(offset + DIGEST_SIZE)
    if (chunkSize === 0) corrupt('empty chunk')
    chunks.push({ digest: Buffer.from(data.subarray(offset, offset + DIGEST_SIZE)), size: chunkSize })
  }
  if (size !== undefined) checkManifestSize(chunks, size)
  return chunks
}

export function checkManifestSize(chunks: readonly ChunkRef[], size: number): void {
  let total = 0
  for (const chunk of chunks) total += chunk.size
  if (total !== size) throw new NixcasError('CORRUPT_OBJECT', `blob manifest: chunks add up to ${total} bytes, the file has ${size}`)
}

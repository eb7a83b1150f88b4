import { NixcasError } from '../errors.ts'
import { DIGEST_SIZE, digestOf, digestsEqual, type Digest } from './digest.ts'

/**
 * The closure pack of a root: every directory encoding and blob manifest the root's NAR
 * needs, in one object, so rendering a NAR costs one metadata round trip however deep the
 * tree. Version 1 (little-endian):
 *   magic "NCP1", then records: kind u8 (1 directory, 2 manifest), digest (32 bytes),
 *   length u32, bytes.
 * A directory record's digest is BLAKE3 of its bytes and is checked on decode; a manifest
 * record's digest is the digest of the blob it describes.
 */
export const PACK_MAGIC = Buffer.from('NCP1')

export type PackRecord = { readonly kind: 'directory' | 'manifest'; readonly digest: Digest; readonly bytes: Buffer }

const KIND_CODE = { directory: 1, manifest: 2 } as const

export function encodePack(records: readonly PackRecord[]): Buffer {
  const parts: Buffer[] = [PACK_MAGIC]
  for (const record of records) {
    const header = Buffer.allocUnsafe(1 + DIGEST_SIZE + 4)
    header[0] = KIND_CODE[record.kind]
    record.digest.copy(header, 1)
    header.writeUInt32LE(record.bytes.length, 1 + DIGEST_SIZE)
    parts.push(header, record.bytes)
  }
  return Buffer.concat(parts)
}

export function decodePack(bytes: Uint8Array): PackRecord[] {
  const data = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const corrupt = (message: string): never => {
    throw new NixcasError('CORRUPT_OBJECT', `closure pack: ${message}`)
  }
  if (data.length < 4 || !data.subarray(0, 4).equals(PACK_MAGIC)) corrupt('bad magic')
  const records: PackRecord[] = []
  let offset = 4
  while (offset < data.length) {
    if (offset + 1 + DIGEST_SIZE + 4 > data.length) corrupt('truncated record header')
    const code = data[offset] as number
    const kind = code === 1 ? 'directory' : code === 2 ? 'manifest' : corrupt(`unknown record kind ${code}`)
    const digest = Buffer.from(data.subarray(offset + 1, offset + 1 + DIGEST_SIZE))
    const length = data.readUInt32LE(offset + 1 + DIGEST_SIZE)
    offset += 1 + DIGEST_SIZE + 4
    if (offset + length > data.length) corrupt('truncated record')
    const body = data.subarray(offset, offset + length)
    offset += length
    if (kind === 'directory' && !digestsEqual(digestOf(body), digest)) corrupt('a directory does not match its digest')
    records.push({ kind, digest, bytes: body })
  }
  return records
}

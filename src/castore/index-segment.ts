import { NixcasError } from '../errors.ts'
import { DIGEST_SIZE, type Digest } from './digest.ts'

/**
 * An index segment: the chunks one ingest added and where they are, so that dedup on any
 * replica (and after a restart) can find them without reading NAR records. Version 1
 * (little-endian): magic "NCI1", pack count u32, pack digests (32 bytes each), entry count
 * u32, then per entry: chunk digest (32), size u32, pack index u32, offset u32.
 */
export const INDEX_SEGMENT_MAGIC = Buffer.from('NCI1')
const ENTRY = DIGEST_SIZE + 12

export interface IndexedChunk {
  readonly digest: Digest
  readonly size: number
  readonly pack: Digest
  readonly offset: number
}

export function encodeIndexSegment(chunks: readonly IndexedChunk[]): Buffer {
  const packs = new Map<string, number>()
  for (const chunk of chunks) {
    const key = chunk.pack.toString('hex')
    if (!packs.has(key)) packs.set(key, packs.size)
  }
  const out = Buffer.allocUnsafe(4 + 4 + packs.size * DIGEST_SIZE + 4 + chunks.length * ENTRY)
  let offset = INDEX_SEGMENT_MAGIC.copy(out, 0)
  offset = out.writeUInt32LE(packs.size, offset)
  for (const key of packs.keys()) offset += out.write(key, offset, 'hex')
  offset = out.writeUInt32LE(chunks.length, offset)
  for (const chunk of chunks) {
    offset += chunk.digest.copy(out, offset)
    offset = out.writeUInt32LE(chunk.size, offset)
    offset = out.writeUInt32LE(packs.get(chunk.pack.toString('hex')) as number, offset)
    offset = out.writeUInt32LE(chunk.offset, offset)
  }
  return out
}

export function decodeIndexSegment(bytes: Uint8Array): IndexedChunk[] {
  const data = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const corrupt = (message: string): never => {
    throw new NixcasError('CORRUPT_OBJECT', `index segment: ${message}`)
  }
  if (data.length < 12 || !data.subarray(0, 4).equals(INDEX_SEGMENT_MAGIC)) corrupt('bad magic')
  const packCount = data.readUInt32LE(4)
  let offset = 8
  if (offset + packCount * DIGEST_SIZE + 4 > data.length) corrupt('truncated')
  const packs: Digest[] = []
  for (let index = 0; index < packCount; index++, offset += DIGEST_SIZE) packs.push(Buffer.from(data.subarray(offset, offset + DIGEST_SIZE)))
  const count = data.readUInt32LE(offset)
  offset += 4
  if (offset + count * ENTRY !== data.length) corrupt('wrong length')
  const chunks: IndexedChunk[] = []
  for (let index = 0; index < count; index++, offset += ENTRY) {
    const pack = packs[data.readUInt32LE(offset + DIGEST_SIZE + 4)] ?? corrupt('an entry names a pack the segment does not have')
    chunks.push({ digest: Buffer.from(data.subarray(offset, offset + DIGEST_SIZE)), size: data.readUInt32LE(offset + DIGEST_SIZE), pack, offset: data.readUInt32LE(offset + DIGEST_SIZE + 8) })
  }
  return chunks
}

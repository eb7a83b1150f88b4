import { NixcasError } from '../errors.ts'
import { DIGEST_SIZE, digestHex, digestOf, type Digest } from './digest.ts'
import { decodeDirectory, encodedNodeSize, readNode, writeNode } from './directory.ts'
import type { ChunkRef } from './manifest.ts'
import { narSizeOf, type CasNode, type DirectoryEntry } from './node.ts'
import { decodeNarIndexEntry } from './path-info.ts'

/**
 * The NAR record: everything needed to serve one NAR, in one object, so a NAR costs one
 * metadata read however deep or wide its tree. It is stored under the NAR's hash and its
 * write is what makes the NAR visible. Version 2 (little-endian):
 *
 *   magic "NCN2", narSize u64, root node (as in a directory entry, see directory.ts)
 *   packs:       count u32, then each pack's digest (32 bytes)
 *   directories: count u32, then each: length u32, canonical encoding (its digest is BLAKE3 of it)
 *   blobs:       count u32, then each: blob digest (32), chunk count u32, then per chunk:
 *                digest (32), size u32, pack index u32, offset in that pack u32
 *
 * Every file's contents appear as a blob (files with equal contents share one). Version 1
 * entries are JSON (`{"v":1,…}`, root only; the tree is in separate objects) and still read.
 */
export const NAR_RECORD_MAGIC = Buffer.from('NCN2')
const CHUNK_ENTRY = DIGEST_SIZE + 12

export interface BlobChunks {
  readonly digest: Digest
  readonly chunks: readonly { readonly digest: Digest; readonly size: number; readonly pack: number; readonly offset: number }[]
}

export interface NarRecordParts {
  narSize: number
  root: CasNode
  packs: readonly Digest[]
  directories: readonly Uint8Array[]
  blobs: readonly BlobChunks[]
}

/** The tree of a v2 record, as the layout and listings read it. */
export class RecordTree {
  constructor(
    readonly directories: ReadonlyMap<string, readonly DirectoryEntry[]>,
    readonly blobs: ReadonlyMap<string, readonly ChunkRef[]>,
    readonly packs: readonly Digest[],
  ) {}

  directory(digest: Digest): readonly DirectoryEntry[] {
    const entries = this.directories.get(digestHex(digest))
    if (!entries) throw new NixcasError('CORRUPT_OBJECT', `NAR record: directory ${digestHex(digest)} is missing`)
    return entries
  }

  chunks(node: { digest: Digest; size: number }): readonly ChunkRef[] {
    if (node.size === 0) return []
    const chunks = this.blobs.get(digestHex(node.digest))
    if (!chunks) throw new NixcasError('CORRUPT_OBJECT', `NAR record: the chunks of blob ${digestHex(node.digest)} are missing`)
    return chunks
  }
}

export interface NarRecord {
  narSize: number
  root: CasNode
  /** Present in version 2 records; a version 1 entry's tree is loaded from separate objects. */
  tree?: RecordTree
}

export function encodeNarRecord(parts: NarRecordParts): Buffer {
  let length = 4 + 8 + encodedNodeSize(parts.root) + 4 + parts.packs.length * DIGEST_SIZE + 4 + 4
  for (const directory of parts.directories) length += 4 + directory.length
  for (const blob of parts.blobs) length += DIGEST_SIZE + 4 + blob.chunks.length * CHUNK_ENTRY
  const out = Buffer.allocUnsafe(length)
  let offset = NAR_RECORD_MAGIC.copy(out, 0)
  offset = out.writeBigUInt64LE(BigInt(parts.narSize), offset)
  offset = writeNode(out, offset, parts.root)
  offset = out.writeUInt32LE(parts.packs.length, offset)
  for (const pack of parts.packs) offset += Buffer.from(pack).copy(out, offset)
  offset = out.writeUInt32LE(parts.directories.length, offset)
  for (const directory of parts.directories) {
    offset = out.writeUInt32LE(directory.length, offset)
    offset += Buffer.from(directory.buffer, directory.byteOffset, directory.byteLength).copy(out, offset)
  }
  offset = out.writeUInt32LE(parts.blobs.length, offset)
  for (const blob of parts.blobs) {
    offset += Buffer.from(blob.digest).copy(out, offset)
    offset = out.writeUInt32LE(blob.chunks.length, offset)
    for (const chunk of blob.chunks) {
      offset += Buffer.from(chunk.digest).copy(out, offset)
      offset = out.writeUInt32LE(chunk.size, offset)
      offset = out.writeUInt32LE(chunk.pack, offset)
      offset = out.writeUInt32LE(chunk.offset, offset)
    }
  }
  if (offset !== length) throw new NixcasError('INTERNAL', `NAR record: encoded ${offset} bytes, expected ${length}`)
  return out
}

function corrupt(message: string): never {
  throw new NixcasError('CORRUPT_OBJECT', `NAR record: ${message}`)
}

/** Decodes and validates a version 2 record (the tree's consistency is checked when it is laid out). */
export function decodeNarRecordV2(bytes: Uint8Array): NarRecord {
  const data = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  let offset = 0
  const need = (length: number): void => {
    if (offset + length > data.length) corrupt('truncated')
  }
  const u32 = (): number => {
    need(4)
    const value = data.readUInt32LE(offset)
    offset += 4
    return value
  }
  const digest = (): Digest => {
    need(DIGEST_SIZE)
    const value = Buffer.from(data.subarray(offset, offset + DIGEST_SIZE))
    offset += DIGEST_SIZE
    return value
  }
  need(12)
  if (!data.subarray(0, 4).equals(NAR_RECORD_MAGIC)) corrupt('bad magic')
  const narSize = data.readBigUInt64LE(4)
  if (narSize > BigInt(Number.MAX_SAFE_INTEGER)) corrupt('size too large')
  offset = 12
  const root = readNode(data, offset)
  offset = root.offset
  const packCount = u32()
  need(packCount * DIGEST_SIZE)
  const packs = Array.from({ length: packCount }, digest)
  const directories = new Map<string, readonly DirectoryEntry[]>()
  const directoryCount = u32()
  for (let index = 0; index < directoryCount; index++) {
    const length = u32()
    need(length)
    const encoding = data.subarray(offset, offset + length)
    offset += length
    directories.set(digestHex(digestOf(encoding)), decodeDirectory(encoding))
  }
  const blobs = new Map<string, ChunkRef[]>()
  const blobCount = u32()
  for (let index = 0; index < blobCount; index++) {
    const blob = digestHex(digest())
    const count = u32()
    need(count * CHUNK_ENTRY)
    const chunks: ChunkRef[] = []
    for (let chunk = 0; chunk < count; chunk++) {
      const chunkDigest = digest()
      const size = u32()
      const pack = packs[u32()] ?? corrupt('a chunk names a pack the record does not have')
      const packOffset = u32()
      if (size === 0) corrupt('an empty chunk')
      chunks.push({ digest: chunkDigest, size, location: { pack, offset: packOffset } })
    }
    blobs.set(blob, chunks)
  }
  if (offset !== data.length) corrupt('trailing bytes')
  const record: NarRecord = { narSize: Number(narSize), root: root.node, tree: new RecordTree(directories, blobs, packs) }
  if (narSizeOf(record.root) !== record.narSize) corrupt('the NAR size and the tree disagree')
  return record
}

/** A record of either version: v2 is binary (magic NCN2), v1 JSON. */
export function decodeNarRecord(bytes: Uint8Array): NarRecord {
  if (bytes.length >= 4 && Buffer.from(bytes.buffer, bytes.byteOffset, 4).equals(NAR_RECORD_MAGIC)) return decodeNarRecordV2(bytes)
  return decodeNarIndexEntry(bytes)
}

import { NixcasError } from '../errors.ts'
import { NAR_NAME_MAX, NAR_TARGET_MAX, entryOrderProblem } from '../nix/nar-format.ts'
import { DIGEST_SIZE, digestOf, type Digest } from './digest.ts'
import { checkEntryName, checkSymlinkTarget, type CasNode, type DirectoryEntry } from './node.ts'

/**
 * Canonical directory encoding, version 1. All integers little-endian.
 *
 *   magic    "NCD1"                      4 bytes
 *   count    u32                         number of entries
 *   entries, strictly increasing by name bytes:
 *     nameLength u8 (1..255), name bytes (no "/" or NUL, not "." or "..")
 *     kind u8:
 *       0 file   1 executable file   2 chunked file   3 chunked executable file
 *         → digest (32 bytes), size u64 (contents length)
 *       4 directory → digest (32 bytes), size u64 (NAR size of the directory node)
 *       5 symlink   → targetLength u16 (1..4095), target bytes (no NUL)
 *
 * One tree has exactly one encoding, so equal trees have equal digests: the digest of a
 * directory is BLAKE3 of these bytes.
 */
export const DIRECTORY_MAGIC = Buffer.from('NCD1')

export const NODE_KIND = { file: 0, executable: 1, chunked: 2, chunkedExecutable: 3, directory: 4, symlink: 5 } as const

function corrupt(message: string): never {
  throw new NixcasError('CORRUPT_OBJECT', `directory encoding: ${message}`)
}

function writeSize(out: Buffer, offset: number, size: number): number {
  out.writeBigUInt64LE(BigInt(size), offset)
  return offset + 8
}

/** Bytes a node takes in the encoding, after its name. */
export function encodedNodeSize(node: CasNode): number {
  return 1 + (node.type === 'symlink' ? 2 + node.target.length : DIGEST_SIZE + 8)
}

/** Writes a node (kind, then digest and size, or the symlink target); returns the offset after it. */
export function writeNode(out: Buffer, at: number, node: CasNode): number {
  let offset = at
  if (node.type === 'symlink') {
    checkSymlinkTarget(node.target)
    out[offset++] = NODE_KIND.symlink
    out.writeUInt16LE(node.target.length, offset)
    offset += 2
    return offset + node.target.copy(out, offset)
  }
  out[offset++] = node.type === 'directory' ? NODE_KIND.directory : (node.chunked ? NODE_KIND.chunked : NODE_KIND.file) + (node.executable ? 1 : 0)
  if (node.digest.length !== DIGEST_SIZE) corrupt('digest of the wrong length')
  offset += node.digest.copy(out, offset)
  return writeSize(out, offset, node.size)
}

export function encodeDirectory(entries: readonly DirectoryEntry[]): Buffer {
  let length = DIRECTORY_MAGIC.length + 4
  let previous: Uint8Array | null = null
  for (const { name, node } of entries) {
    checkEntryName(name)
    const problem = entryOrderProblem(previous, name)
    if (problem) corrupt(problem.message)
    previous = name
    length += 1 + name.length + encodedNodeSize(node)
  }
  const out = Buffer.allocUnsafe(length)
  DIRECTORY_MAGIC.copy(out, 0)
  out.writeUInt32LE(entries.length, 4)
  let offset = 8
  for (const { name, node } of entries) {
    out[offset++] = name.length
    offset += name.copy(out, offset)
    offset = writeNode(out, offset, node)
  }
  return out
}

export function directoryDigest(encoding: Uint8Array): Digest {
  return digestOf(encoding)
}

/** Reads a node written by `writeNode`, fully validated; anything off is CORRUPT_OBJECT. */
export function readNode(data: Buffer, at: number): { node: CasNode; offset: number } {
  let offset = at
  const need = (length: number): void => {
    if (offset + length > data.length) corrupt('truncated')
  }
  need(1)
  const kind = data[offset++] as number
  if (kind === NODE_KIND.symlink) {
    need(2)
    const targetLength = data.readUInt16LE(offset)
    offset += 2
    if (targetLength === 0 || targetLength > NAR_TARGET_MAX) corrupt('bad symlink target length')
    need(targetLength)
    const target = Buffer.from(data.subarray(offset, offset + targetLength))
    checkSymlinkTarget(target)
    return { node: { type: 'symlink', target }, offset: offset + targetLength }
  }
  if (kind > NODE_KIND.directory) corrupt(`unknown entry kind ${kind}`)
  need(DIGEST_SIZE + 8)
  const digest = Buffer.from(data.subarray(offset, offset + DIGEST_SIZE))
  offset += DIGEST_SIZE
  const size = data.readBigUInt64LE(offset)
  offset += 8
  if (size > BigInt(Number.MAX_SAFE_INTEGER)) corrupt('size too large')
  const node: CasNode =
    kind === NODE_KIND.directory
      ? { type: 'directory', digest, size: Number(size) }
      : { type: 'file', digest, size: Number(size), executable: (kind & 1) === 1, chunked: kind >= NODE_KIND.chunked }
  return { node, offset }
}

/** Decodes and fully validates an encoding; anything off is CORRUPT_OBJECT. */
export function decodeDirectory(bytes: Uint8Array): DirectoryEntry[] {
  const data = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (data.length < 8 || !data.subarray(0, 4).equals(DIRECTORY_MAGIC)) corrupt('bad magic')
  const count = data.readUInt32LE(4)
  let offset = 8
  const entries: DirectoryEntry[] = []
  let previous: Uint8Array | null = null
  for (let index = 0; index < count; index++) {
    if (offset + 1 > data.length) corrupt('truncated')
    const nameLength = data[offset++] as number
    if (nameLength === 0 || nameLength > NAR_NAME_MAX) corrupt('bad name length')
    if (offset + nameLength > data.length) corrupt('truncated')
    const name = Buffer.from(data.subarray(offset, offset + nameLength))
    offset += nameLength
    checkEntryName(name)
    const problem = entryOrderProblem(previous, name)
    if (problem) corrupt(problem.message)
    previous = name
    const read = readNode(data, offset)
    offset = read.offset
    entries.push({ name, node: read.node })
  }
  if (offset !== data.length) corrupt('trailing bytes')
  return entries
}

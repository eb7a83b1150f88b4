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

const KIND = { file: 0, executable: 1, chunked: 2, chunkedExecutable: 3, directory: 4, symlink: 5 } as const

function corrupt(message: string): never {
  throw new NixcasError('CORRUPT_OBJECT', `directory encoding: ${message}`)
}

function writeSize(out: Buffer, offset: number, size: number): number {
  out.writeBigUInt64LE(BigInt(size), offset)
  return offset + 8
}

export function encodeDirectory(entries: readonly DirectoryEntry[]): Buffer {
  let length = DIRECTORY_MAGIC.length + 4
  let previous: Uint8Array | null = null
  for (const { name, node } of entries) {
    checkEntryName(name)
    const problem = entryOrderProblem(previous, name)
    if (problem) corrupt(problem.message)
    previous = name
    length += 2 + name.length + (node.type === 'symlink' ? 2 + node.target.length : DIGEST_SIZE + 8)
  }
  const out = Buffer.allocUnsafe(length)
  DIRECTORY_MAGIC.copy(out, 0)
  out.writeUInt32LE(entries.length, 4)
  let offset = 8
  for (const { name, node } of entries) {
    out[offset++] = name.length
    offset += name.copy(out, offset)
    if (node.type === 'symlink') {
      checkSymlinkTarget(node.target)
      out[offset++] = KIND.symlink
      out.writeUInt16LE(node.target.length, offset)
      offset += 2
      offset += node.target.copy(out, offset)
      continue
    }
    out[offset++] =
      node.type === 'directory' ? KIND.directory : (node.chunked ? KIND.chunked : KIND.file) + (node.executable ? 1 : 0)
    if (node.digest.length !== DIGEST_SIZE) corrupt('digest of the wrong length')
    offset += node.digest.copy(out, offset)
    offset = writeSize(out, offset, node.size)
  }
  return out
}

export function directoryDigest(encoding: Uint8Array): Digest {
  return digestOf(encoding)
}

/** Decodes and fully validates an encoding; anything off is CORRUPT_OBJECT. */
export function decodeDirectory(bytes: Uint8Array): DirectoryEntry[] {
  const data = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (data.length < 8 || !data.subarray(0, 4).equals(DIRECTORY_MAGIC)) corrupt('bad magic')
  const count = data.readUInt32LE(4)
  let offset = 8
  const need = (length: number): void => {
    if (offset + length > data.length) corrupt('truncated')
  }
  const entries: DirectoryEntry[] = []
  let previous: Uint8Array | null = null
  for (let index = 0; index < count; index++) {
    need(1)
    const nameLength = data[offset++] as number
    if (nameLength === 0 || nameLength > NAR_NAME_MAX) corrupt('bad name length')
    need(nameLength + 1)
    const name = Buffer.from(data.subarray(offset, offset + nameLength))
    offset += nameLength
    checkEntryName(name)
    const problem = entryOrderProblem(previous, name)
    if (problem) corrupt(problem.message)
    previous = name
    const kind = data[offset++] as number
    let node: CasNode
    if (kind === KIND.symlink) {
      need(2)
      const targetLength = data.readUInt16LE(offset)
      offset += 2
      if (targetLength === 0 || targetLength > NAR_TARGET_MAX) corrupt('bad symlink target length')
      need(targetLength)
      const target = Buffer.from(data.subarray(offset, offset + targetLength))
      offset += targetLength
      checkSymlinkTarget(target)
      node = { type: 'symlink', target }
    } else if (kind <= KIND.directory) {
      need(DIGEST_SIZE + 8)
      const digest = Buffer.from(data.subarray(offset, offset + DIGEST_SIZE))
      offset += DIGEST_SIZE
      const size = data.readBigUInt64LE(offset)
      offset += 8
      if (size > BigInt(Number.MAX_SAFE_INTEGER)) corrupt('size too large')
      node =
        kind === KIND.directory
          ? { type: 'directory', digest, size: Number(size) }
          : { type: 'file', digest, size: Number(size), executable: (kind & 1) === 1, chunked: kind >= KIND.chunked }
    } else {
      return corrupt(`unknown entry kind ${kind}`)
    }
    entries.push({ name, node })
  }
  if (offset !== data.length) corrupt('trailing bytes')
  return entries
}

import { NixcasError } from '../errors.ts'

/**
 * The NAR wire format, shared by the reader, the writer and the renderer's layout.
 * Every string is a little-endian u64 length, the bytes, then zero padding to 8.
 */

export const NAR_NAME_MAX = 255
export const NAR_TARGET_MAX = 4095

export type NarErrorReason =
  | 'bad-magic'
  | 'unexpected-token'
  | 'bad-padding'
  | 'bad-node-type'
  | 'bad-name'
  | 'name-too-long'
  | 'unsorted-entries'
  | 'duplicate-entry'
  | 'bad-symlink-target'
  | 'target-too-long'
  | 'length-too-large'
  | 'truncated'
  | 'trailing-data'
  | 'bad-event-order'

/** A NAR that is not in the canonical form Nix produces; `offset` is the byte where it went wrong. */
export class NarError extends NixcasError {
  readonly reason: NarErrorReason
  readonly offset: number

  constructor(reason: NarErrorReason, offset: number, message: string) {
    super('BAD_NAR', `malformed NAR at byte ${offset}: ${message}`)
    this.name = 'NarError'
    this.reason = reason
    this.offset = offset
  }
}

/** What the reader yields and the writer takes; `name` is null for the root node. */
export type NarEvent =
  | { readonly type: 'directory'; readonly name: Uint8Array | null }
  | { readonly type: 'end' }
  | { readonly type: 'file'; readonly name: Uint8Array | null; readonly executable: boolean; readonly size: number }
  | { readonly type: 'data'; readonly bytes: Uint8Array }
  | { readonly type: 'symlink'; readonly name: Uint8Array | null; readonly target: Uint8Array }

export function padding(length: number): number {
  return (8 - (length % 8)) % 8
}

export function u64(value: number): Buffer {
  const out = Buffer.alloc(8)
  out.writeBigUInt64LE(BigInt(value))
  return out
}

export function narString(bytes: Uint8Array | string): Buffer {
  const body = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes
  return Buffer.concat([u64(body.length), body, Buffer.alloc(padding(body.length))])
}

export function narStringSize(length: number): number {
  return 8 + length + padding(length)
}

const tokens = (...parts: string[]): Buffer => Buffer.concat(parts.map((part) => narString(part)))

export const NAR_MAGIC = 'nix-archive-1'
export const MAGIC_BYTES = narString(NAR_MAGIC)
export const DIRECTORY_HEADER = tokens('(', 'type', 'directory')
export const ENTRY_PREFIX = tokens('entry', '(', 'name')
export const ENTRY_NODE = tokens('node')
export const CLOSE = tokens(')')
const REGULAR_PREFIX = tokens('(', 'type', 'regular')
const EXECUTABLE_MARK = tokens('executable', '')
const CONTENTS = tokens('contents')
const SYMLINK_PREFIX = tokens('(', 'type', 'symlink', 'target')

/** Everything from `(` up to and including the contents length of a regular file. */
export function fileHeader(executable: boolean, size: number): Buffer {
  return Buffer.concat(executable ? [REGULAR_PREFIX, EXECUTABLE_MARK, CONTENTS, u64(size)] : [REGULAR_PREFIX, CONTENTS, u64(size)])
}

export function fileHeaderSize(executable: boolean): number {
  return REGULAR_PREFIX.length + (executable ? EXECUTABLE_MARK.length : 0) + CONTENTS.length + 8
}

/** NAR bytes of a regular file node, from `(` to `)`. */
export function fileNodeSize(executable: boolean, size: number): number {
  return fileHeaderSize(executable) + size + padding(size) + CLOSE.length
}

/** NAR bytes of a symlink node, from `(` to `)`. */
export function symlinkNodeSize(targetLength: number): number {
  return SYMLINK_PREFIX.length + narStringSize(targetLength) + CLOSE.length
}

/** NAR bytes of a directory entry whose node takes `nodeSize` bytes. */
export function entrySize(nameLength: number, nodeSize: number): number {
  return ENTRY_PREFIX.length + narStringSize(nameLength) + ENTRY_NODE.length + nodeSize + CLOSE.length
}

/** Padding after the contents, then `)`. */
export function fileTrailer(size: number): Buffer {
  return Buffer.concat([Buffer.alloc(padding(size)), CLOSE])
}

export function symlinkNode(target: Uint8Array): Buffer {
  return Buffer.concat([SYMLINK_PREFIX, narString(target), CLOSE])
}

export function entryHeader(name: Uint8Array): Buffer {
  return Buffer.concat([ENTRY_PREFIX, narString(name), ENTRY_NODE])
}

/** Why `name` cannot be a directory entry, or null when it can. */
export function entryNameProblem(name: Uint8Array): { reason: NarErrorReason; message: string } | null {
  if (name.length === 0) return { reason: 'bad-name', message: 'entry name is empty' }
  if (name.length > NAR_NAME_MAX) return { reason: 'name-too-long', message: `entry name is longer than ${NAR_NAME_MAX} bytes` }
  if ((name.length === 1 && name[0] === 0x2e) || (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e)) {
    return { reason: 'bad-name', message: `entry name ${JSON.stringify(Buffer.from(name).toString())} is not allowed` }
  }
  if (name.includes(0x2f) || name.includes(0)) return { reason: 'bad-name', message: 'entry name contains "/" or NUL' }
  return null
}

export function symlinkTargetProblem(target: Uint8Array): { reason: NarErrorReason; message: string } | null {
  if (target.length === 0) return { reason: 'bad-symlink-target', message: 'symlink target is empty' }
  if (target.length > NAR_TARGET_MAX) return { reason: 'target-too-long', message: `symlink target is longer than ${NAR_TARGET_MAX} bytes` }
  if (target.includes(0)) return { reason: 'bad-symlink-target', message: 'symlink target contains NUL' }
  return null
}

/** Entries in a directory must be strictly increasing in byte order (sorted, no duplicates). */
export function entryOrderProblem(previous: Uint8Array | null, name: Uint8Array): { reason: NarErrorReason; message: string } | null {
  if (previous === null) return null
  const order = Buffer.compare(previous, name)
  if (order === 0) return { reason: 'duplicate-entry', message: `entry ${JSON.stringify(Buffer.from(name).toString())} appears twice` }
  if (order > 0) return { reason: 'unsorted-entries', message: `entry ${JSON.stringify(Buffer.from(name).toString())} is out of order` }
  return null
}

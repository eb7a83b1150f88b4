import { NixcasError } from '../errors.ts'
import { DIRECTORY_HEADER, CLOSE, MAGIC_BYTES, entryNameProblem, entrySize, fileNodeSize, symlinkNodeSize, symlinkTargetProblem } from '../nix/nar-format.ts'
import { DIGEST_SIZE, digestHex, parseDigestHex, type Digest } from './digest.ts'

/**
 * A node of the content-addressed tree.
 * - file: `digest` is BLAKE3 of the whole contents; `chunked` says the contents are
 *   stored as a manifest of chunks (otherwise as one chunk keyed by `digest` itself), so a
 *   reader never spends a round trip finding out.
 * - directory: `digest` is BLAKE3 of its canonical encoding; `size` is the NAR size of the
 *   directory node, so any range of a NAR can be located without reading what precedes it.
 */
export type CasNode =
  | { readonly type: 'file'; readonly digest: Digest; readonly size: number; readonly executable: boolean; readonly chunked: boolean }
  | { readonly type: 'directory'; readonly digest: Digest; readonly size: number }
  | { readonly type: 'symlink'; readonly target: Buffer }

export interface DirectoryEntry {
  readonly name: Buffer
  readonly node: CasNode
}

/** NAR bytes of a node, from `(` to `)`. */
export function nodeNarSize(node: CasNode): number {
  switch (node.type) {
    case 'file':
      return fileNodeSize(node.executable, node.size)
    case 'directory':
      return node.size
    case 'symlink':
      return symlinkNodeSize(node.target.length)
  }
}

/** NAR size of a whole archive whose root is `node`. */
export function narSizeOf(node: CasNode): number {
  return MAGIC_BYTES.length + nodeNarSize(node)
}

/** NAR size of a directory node with these entries. */
export function directoryNarSize(entries: readonly DirectoryEntry[]): number {
  let size = DIRECTORY_HEADER.length + CLOSE.length
  for (const entry of entries) size += entrySize(entry.name.length, nodeNarSize(entry.node))
  return size
}

export function checkEntryName(name: Uint8Array): void {
  const problem = entryNameProblem(name)
  if (problem) throw new NixcasError('CORRUPT_OBJECT', problem.message)
}

export function checkSymlinkTarget(target: Uint8Array): void {
  const problem = symlinkTargetProblem(target)
  if (problem) throw new NixcasError('CORRUPT_OBJECT', problem.message)
}

/** Plain JSON form, for PathInfo and index objects. */
export type CasNodeJson =
  | { type: 'file'; digest: string; size: number; executable: boolean; chunked: boolean }
  | { type: 'directory'; digest: string; size: number }
  | { type: 'symlink'; target: string }

export function nodeToJson(node: CasNode): CasNodeJson {
  switch (node.type) {
    case 'file':
      return { type: 'file', digest: digestHex(node.digest), size: node.size, executable: node.executable, chunked: node.chunked }
    case 'directory':
      return { type: 'directory', digest: digestHex(node.digest), size: node.size }
    case 'symlink':
      return { type: 'symlink', target: node.target.toString('base64') }
  }
}

const isSize = (value: unknown): value is number => typeof value === 'number' && Number.isSafeInteger(value) && value >= 0

export function nodeFromJson(value: unknown): CasNode {
  const json = value as Partial<Record<string, unknown>> | null
  const fail = (): never => {
    throw new NixcasError('CORRUPT_OBJECT', `not a node: ${JSON.stringify(value)?.slice(0, 200)}`)
  }
  if (!json || typeof json !== 'object') return fail()
  if (json.type === 'file' && typeof json.digest === 'string' && isSize(json.size) && typeof json.executable === 'boolean' && typeof json.chunked === 'boolean') {
    return { type: 'file', digest: parseDigestHex(json.digest), size: json.size, executable: json.executable, chunked: json.chunked }
  }
  if (json.type === 'directory' && typeof json.digest === 'string' && isSize(json.size)) {
    return { type: 'directory', digest: parseDigestHex(json.digest), size: json.size }
  }
  if (json.type === 'symlink' && typeof json.target === 'string') {
    const target = Buffer.from(json.target, 'base64')
    checkSymlinkTarget(target)
    return { type: 'symlink', target }
  }
  return fail()
}

export { DIGEST_SIZE }

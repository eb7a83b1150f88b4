import { NixcasError } from '../errors.ts'
import type { ChunkRef } from '../castore/manifest.ts'
import { directoryNarSize, narSizeOf, type CasNode, type DirectoryEntry } from '../castore/node.ts'
import { digestHex, type Digest } from '../castore/digest.ts'
import { CLOSE, DIRECTORY_HEADER, MAGIC_BYTES, entryHeader, fileHeader, fileTrailer, symlinkNode } from '../nix/nar-format.ts'

export type FileNode = Extract<CasNode, { type: 'file' }>

/** A piece of a NAR: framing bytes held in memory, or the contents of a file. */
export type Segment =
  | { readonly kind: 'bytes'; readonly offset: number; readonly bytes: Buffer }
  | { readonly kind: 'file'; readonly offset: number; readonly node: FileNode; readonly chunks: readonly ChunkRef[] }

export interface Layout {
  /** Known before any file byte is read. */
  readonly size: number
  /** In NAR order, each starting where the previous ends. */
  readonly segments: readonly Segment[]
}

/** What a layout needs from the closure: directories and chunk lists by digest. */
export interface TreeSource {
  directory(digest: Digest): readonly DirectoryEntry[]
  manifest(node: FileNode): readonly ChunkRef[]
}

/** The chunks holding a file's contents: one chunk keyed by the blob digest, or its manifest's. */
export function chunksOf(node: FileNode, tree: TreeSource): readonly ChunkRef[] {
  if (node.size === 0) return []
  return node.chunked ? tree.manifest(node) : [{ digest: node.digest, size: node.size }]
}

/**
 * The NAR of `root` as segments. Adjacent framing is merged into one segment, so a tree
 * of small files alternates bytes and file segments. Directory sizes are checked against
 * their entries: a tree that disagrees with itself is refused, not rendered wrong.
 */
export function layoutNar(root: CasNode, tree: TreeSource): Layout {
  const segments: Segment[] = []
  let pending: Buffer[] = [MAGIC_BYTES]
  let offset = 0
  let pendingBytes = MAGIC_BYTES.length
  const push = (bytes: Buffer): void => {
    pending.push(bytes)
    pendingBytes += bytes.length
  }
  const flush = (): void => {
    if (pendingBytes === 0) return
    segments.push({ kind: 'bytes', offset, bytes: pending.length === 1 ? (pending[0] as Buffer) : Buffer.concat(pending, pendingBytes) })
    offset += pendingBytes
    pending = []
    pendingBytes = 0
  }

  // Explicit stack: depth is bounded by the data, not by the call stack.
  type Step = { node: CasNode; name: Buffer | null } | { close: boolean }
  const steps: Step[] = [{ node: root, name: null }]
  while (steps.length > 0) {
    const step = steps.pop() as Step
    if ('close' in step) {
      push(CLOSE) // directory
      if (step.close) push(CLOSE) // its entry
      continue
    }
    const { node, name } = step
    if (name) push(entryHeader(name))
    if (node.type === 'symlink') {
      push(symlinkNode(node.target))
      if (name) push(CLOSE)
    } else if (node.type === 'file') {
      push(fileHeader(node.executable, node.size))
      if (node.size > 0) {
        flush()
        segments.push({ kind: 'file', offset, node, chunks: chunksOf(node, tree) })
        offset += node.size
      }
      push(fileTrailer(node.size))
      if (name) push(CLOSE)
    } else {
      const entries = tree.directory(node.digest)
      if (directoryNarSize(entries) !== node.size) {
        throw new NixcasError('CORRUPT_OBJECT', `directory ${digestHex(node.digest)} does not have the size its parent records`)
      }
      push(DIRECTORY_HEADER)
      steps.push({ close: name !== null })
      for (let index = entries.length - 1; index >= 0; index--) {
        const entry = entries[index] as DirectoryEntry
        steps.push({ node: entry.node, name: entry.name })
      }
    }
  }
  flush()
  if (offset !== narSizeOf(root)) throw new NixcasError('CORRUPT_OBJECT', `the tree renders to ${offset} bytes, not the ${narSizeOf(root)} recorded`)
  return { size: offset, segments }
}

/** Index of the segment holding byte `position` (binary search). */
export function segmentAt(layout: Layout, position: number): number {
  let low = 0
  let high = layout.segments.length - 1
  while (low < high) {
    const middle = (low + high + 1) >> 1
    if ((layout.segments[middle] as Segment).offset <= position) low = middle
    else high = middle - 1
  }
  return low
}

import { NixcasError } from '../errors.ts'
import type { ChunkRef } from '../castore/manifest.ts'
import { directoryNarSize, narSizeOf, type CasNode, type DirectoryEntry } from '../castore/node.ts'
import { digestHex, type Digest } from '../castore/digest.ts'
import { CLOSE, DIRECTORY_HEADER, ENTRY_NODE, ENTRY_PREFIX, MAGIC_BYTES, fileHeader, narStringSize, padding, symlinkNode } from '../nix/nar-format.ts'

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
  /** Bytes of framing the segments hold in memory (what caching the layout costs, with the segments). */
  readonly framingBytes: number
}

/** What a layout needs from the closure: directories and chunk lists by digest. */
export type TreeSource = {
  directory(digest: Digest): readonly DirectoryEntry[]
} & (
  | {
      /** Where a file's chunks are (a NAR record knows this for every file). */
      chunks(node: FileNode): readonly ChunkRef[]
    }
  | {
      /** The manifest of a chunked file, in stores from before data packs. */
      manifest(node: FileNode): readonly ChunkRef[]
    }
)

/** The chunks holding a file's contents: from the record, or one chunk object keyed by the blob digest, or its manifest's. */
export function chunksOf(node: FileNode, tree: TreeSource): readonly ChunkRef[] {
  if (node.size === 0) return []
  if ('chunks' in tree) return tree.chunks(node)
  return node.chunked ? tree.manifest(node) : [{ digest: node.digest, size: node.size }]
}

// The constant framing before a file's size and before a symlink's target, cut once from
// the NAR format's own helpers.
const FILE_PREFIX = { plain: fileHeader(false, 0).subarray(0, -8), executable: fileHeader(true, 0).subarray(0, -8) }
const SYMLINK_TARGET = Buffer.from('t')
const SYMLINK_PREFIX = symlinkNode(SYMLINK_TARGET).subarray(0, -(narStringSize(SYMLINK_TARGET.length) + CLOSE.length))

const BLOCK = 64 * 1024
/** A segment at least this large is copied out of a block much larger than itself, so the block's spare room is not kept alive with it. */
const TRIM = 1024 * 1024

/**
 * Framing written straight into shared blocks: one allocation per 64 KiB rather than
 * several small buffers per entry, which for a directory of a million entries is the
 * difference between seconds of garbage collection and none. Segments are views into
 * the blocks.
 */
class FramingWriter {
  private block = Buffer.allocUnsafe(BLOCK)
  private start = 0
  private end = 0

  get pending(): number {
    return this.end - this.start
  }

  private reserve(length: number): void {
    if (this.end + length <= this.block.length) return
    const pending = this.pending
    const next = Buffer.allocUnsafe(Math.max(BLOCK, pending + length + (pending >> 1)))
    this.block.copy(next, 0, this.start, this.end)
    this.block = next
    this.start = 0
    this.end = pending
  }

  bytes(bytes: Uint8Array): void {
    this.reserve(bytes.length)
    this.block.set(bytes, this.end)
    this.end += bytes.length
  }

  u64(value: number): void {
    this.reserve(8)
    this.block.writeUInt32LE(value % 2 ** 32, this.end)
    this.block.writeUInt32LE(Math.floor(value / 2 ** 32), this.end + 4)
    this.end += 8
  }

  zeros(length: number): void {
    this.reserve(length)
    this.block.fill(0, this.end, this.end + length)
    this.end += length
  }

  /** A NAR string: length, bytes, zero padding to 8. */
  string(bytes: Uint8Array): void {
    this.u64(bytes.length)
    this.bytes(bytes)
    this.zeros(padding(bytes.length))
  }

  /** The framing written since the last take. */
  take(): Buffer {
    const out = this.block.subarray(this.start, this.end)
    this.start = this.end
    if (out.length < TRIM || this.block.length < out.length * 1.25) return out
    this.block = Buffer.allocUnsafe(BLOCK)
    this.start = this.end = 0
    return Buffer.from(out)
  }
}

/**
 * The NAR of `root` as segments. Adjacent framing is merged into one segment, so a tree
 * of small files alternates bytes and file segments. Directory sizes are checked against
 * their entries: a tree that disagrees with itself is refused, not rendered wrong. The
 * tree is walked with an explicit stack: depth is bounded by the data, not by the call
 * stack.
 */
export function layoutNar(root: CasNode, tree: TreeSource): Layout {
  const segments: Segment[] = []
  const framing = new FramingWriter()
  framing.bytes(MAGIC_BYTES)
  let offset = 0
  let framingBytes = 0
  const flush = (): void => {
    const length = framing.pending
    if (length === 0) return
    segments.push({ kind: 'bytes', offset, bytes: framing.take() })
    offset += length
    framingBytes += length
  }

  type Step = { node: CasNode; name: Buffer | null } | { close: boolean }
  const steps: Step[] = [{ node: root, name: null }]
  while (steps.length > 0) {
    const step = steps.pop() as Step
    if ('close' in step) {
      framing.bytes(CLOSE) // directory
      if (step.close) framing.bytes(CLOSE) // its entry
      continue
    }
    const { node, name } = step
    if (name) {
      framing.bytes(ENTRY_PREFIX)
      framing.string(name)
      framing.bytes(ENTRY_NODE)
    }
    if (node.type === 'symlink') {
      framing.bytes(SYMLINK_PREFIX)
      framing.string(node.target)
      framing.bytes(CLOSE)
      if (name) framing.bytes(CLOSE)
    } else if (node.type === 'file') {
      framing.bytes(node.executable ? FILE_PREFIX.executable : FILE_PREFIX.plain)
      framing.u64(node.size)
      if (node.size > 0) {
        flush()
        segments.push({ kind: 'file', offset, node, chunks: chunksOf(node, tree) })
        offset += node.size
      }
      framing.zeros(padding(node.size))
      framing.bytes(CLOSE)
      if (name) framing.bytes(CLOSE)
    } else {
      const entries = tree.directory(node.digest)
      if (directoryNarSize(entries) !== node.size) {
        throw new NixcasError('CORRUPT_OBJECT', `directory ${digestHex(node.digest)} does not have the size its parent records`)
      }
      framing.bytes(DIRECTORY_HEADER)
      steps.push({ close: name !== null })
      for (let index = entries.length - 1; index >= 0; index--) {
        const entry = entries[index] as DirectoryEntry
        steps.push({ node: entry.node, name: entry.name })
      }
    }
  }
  flush()
  if (offset !== narSizeOf(root)) throw new NixcasError('CORRUPT_OBJECT', `the tree renders to ${offset} bytes, not the ${narSizeOf(root)} recorded`)
  return { size: offset, segments, framingBytes }
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

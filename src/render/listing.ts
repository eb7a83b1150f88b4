import type { CasNode, DirectoryEntry } from '../castore/node.ts'
import { DIRECTORY_HEADER, ENTRY_NODE, ENTRY_PREFIX, MAGIC_BYTES, entrySize, fileHeaderSize, narStringSize } from '../nix/nar-format.ts'
import { nodeNarSize } from '../castore/node.ts'
import type { TreeSource } from './layout.ts'

/** One node of a `.ls` listing, in the JSON shape Nix's binary caches use. */
export type ListingNode =
  | { type: 'regular'; size: number; executable?: true; narOffset: number }
  | { type: 'symlink'; target: string }
  | { type: 'directory'; entries: Record<string, ListingNode> }

/** The listing is handed on in pieces of about this many characters. */
const PIECE = 64 * 1024

/** A directory whose entries are being written: the next one, and where it starts in the NAR. */
interface Frame {
  readonly entries: readonly DirectoryEntry[]
  index: number
  position: number
}

/**
 * The listing of a store path as JSON text, `{"version":1,"root":…}`: every entry with
 * its type, size, and where its contents sit in the NAR.
 *
 * Written piece by piece with an explicit stack, never as one object tree handed to
 * JSON.stringify: a directory of millions of entries or a tree thousands of levels deep
 * is neither held twice in memory nor limited by the call stack. Entries come out in NAR
 * order, which an object built in JavaScript would not keep (integer-like names move to
 * the front) and in which a name like `__proto__` is an ordinary key.
 */
export function* listingJson(root: CasNode, tree: TreeSource): Generator<string> {
  const frames: Frame[] = []
  let out = '{"version":1,"root":'
  /** Writes a node whose NAR bytes start at `offset`; a directory's entries follow as a frame. */
  const open = (node: CasNode, offset: number): void => {
    if (node.type === 'symlink') {
      out += `{"type":"symlink","target":${JSON.stringify(node.target.toString('utf8'))}}`
    } else if (node.type === 'file') {
      const executable = node.executable ? ',"executable":true' : ''
      out += `{"type":"regular","size":${node.size}${executable},"narOffset":${offset + fileHeaderSize(node.executable)}}`
    } else {
      out += '{"type":"directory","entries":{'
      frames.push({ entries: tree.directory(node.digest), index: 0, position: offset + DIRECTORY_HEADER.length })
    }
  }

  open(root, MAGIC_BYTES.length)
  while (frames.length > 0) {
    const frame = frames[frames.length - 1] as Frame
    if (frame.index === frame.entries.length) {
      out += '}}'
      frames.pop()
      continue
    }
    const { name, node } = frame.entries[frame.index] as DirectoryEntry
    if (frame.index > 0) out += ','
    frame.index++
    const childOffset = frame.position + ENTRY_PREFIX.length + narStringSize(name.length) + ENTRY_NODE.length
    frame.position += entrySize(name.length, nodeNarSize(node))
    out += `${JSON.stringify(name.toString('utf8'))}:`
    open(node, childOffset)
    if (out.length >= PIECE) {
      yield out
      out = ''
    }
  }
  yield `${out}}`
}

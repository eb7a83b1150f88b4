import type { CasNode } from '../castore/node.ts'
import { DIRECTORY_HEADER, ENTRY_NODE, ENTRY_PREFIX, MAGIC_BYTES, entrySize, fileHeaderSize, narStringSize } from '../nix/nar-format.ts'
import { nodeNarSize } from '../castore/node.ts'
import type { TreeSource } from './layout.ts'

/** One node of a `.ls` listing, in the JSON shape Nix's binary caches use. */
export type ListingNode =
  | { type: 'regular'; size: number; executable?: true; narOffset: number }
  | { type: 'symlink'; target: string }
  | { type: 'directory'; entries: Record<string, ListingNode> }

function list(node: CasNode, offset: number, tree: TreeSource): ListingNode {
  if (node.type === 'symlink') return { type: 'symlink', target: node.target.toString('utf8') }
  if (node.type === 'file') {
    const entry: ListingNode = { type: 'regular', size: node.size, narOffset: offset + fileHeaderSize(node.executable) }
    if (node.executable) entry.executable = true
    return entry
  }
  const entries: Record<string, ListingNode> = {}
  let position = offset + DIRECTORY_HEADER.length
  for (const { name, node: child } of tree.directory(node.digest)) {
    const childOffset = position + ENTRY_PREFIX.length + narStringSize(name.length) + ENTRY_NODE.length
    entries[name.toString('utf8')] = list(child, childOffset, tree)
    position += entrySize(name.length, nodeNarSize(child))
  }
  return { type: 'directory', entries }
}

/** The listing of a store path: every entry with its type, size, and where its contents sit in the NAR. */
export function listing(root: CasNode, tree: TreeSource): { version: 1; root: ListingNode } {
  return { version: 1, root: list(root, MAGIC_BYTES.length, tree) }
}

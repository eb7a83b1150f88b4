import { NixcasError } from '../errors.ts'
import { digestHex, type Digest } from '../castore/digest.ts'
import { decodeDirectory } from '../castore/directory.ts'
import { checkManifestSize, decodeManifest, type ChunkRef } from '../castore/manifest.ts'
import { directoryNarSize, type CasNode, type DirectoryEntry } from '../castore/node.ts'
import type { Cas } from '../cas/cas.ts'
import type { FileNode } from './layout.ts'

/** How many directories or manifests are fetched at once when there is no pack. */
const LEVEL_CONCURRENCY = 64

/** The directories and manifests under one root, fetched before any byte is rendered. */
export class Closure {
  readonly directories = new Map<string, readonly DirectoryEntry[]>()
  readonly manifests = new Map<string, readonly ChunkRef[]>()
  /** Round trips spent loading it (1 with a pack). */
  roundTrips = 0

  directory(digest: Digest): readonly DirectoryEntry[] {
    const entries = this.directories.get(digestHex(digest))
    if (!entries) throw new NixcasError('MISSING_OBJECT', `directory ${digestHex(digest)} is not in the closure`)
    return entries
  }

  manifest(node: FileNode): readonly ChunkRef[] {
    const chunks = this.manifests.get(digestHex(node.digest))
    if (!chunks) throw new NixcasError('MISSING_OBJECT', `manifest of blob ${digestHex(node.digest)} is not in the closure`)
    checkManifestSize(chunks, node.size)
    return chunks
  }
}

async function inBatches<T>(items: readonly T[], work: (item: T) => Promise<void>): Promise<void> {
  for (let start = 0; start < items.length; start += LEVEL_CONCURRENCY) {
    await Promise.all(items.slice(start, start + LEVEL_CONCURRENCY).map(work))
  }
}

/**
 * Loads everything the NAR of `root` needs: the closure pack in one round trip when it
 * exists, and whatever it lacks (or everything, without a pack) a tree level at a time,
 * each level in parallel.
 *
 * Levels are plain arrays filled by loops (never `push(...spread)`, whose argument count
 * the engine limits), and each distinct directory is expanded once, so a directory of
 * millions of entries, a tree thousands of levels deep, or one subtree repeated many
 * times costs memory and time in proportion to its distinct objects. Every directory is
 * checked against the NAR size its parent records before any byte is sent: a tree that
 * disagrees with itself is refused up front, not cut off mid-response.
 */
export async function loadClosure(cas: Cas, root: CasNode, signal?: AbortSignal): Promise<Closure> {
  const closure = new Closure()
  if (root.type === 'symlink' || (root.type === 'file' && !root.chunked)) return closure
  const pack = await cas.getPack(root.digest, signal)
  closure.roundTrips++
  for (const record of pack ?? []) {
    if (record.kind === 'directory') closure.directories.set(digestHex(record.digest), decodeDirectory(record.bytes))
    else closure.manifests.set(digestHex(record.digest), decodeManifest(record.bytes))
  }

  const expanded = new Set<string>()
  /** Queues a directory's children once per distinct directory, after checking its size. */
  const expand = (node: Extract<CasNode, { type: 'directory' }>, id: string, entries: readonly DirectoryEntry[], into: CasNode[]): void => {
    if (directoryNarSize(entries) !== node.size) {
      throw new NixcasError('CORRUPT_OBJECT', `directory ${id} does not have the size its parent records`)
    }
    if (expanded.has(id)) return
    expanded.add(id)
    for (const entry of entries) into.push(entry.node)
  }

  let level: CasNode[] = [root]
  while (level.length > 0) {
    const next: CasNode[] = []
    const missingDirectories = new Map<string, Extract<CasNode, { type: 'directory' }>[]>()
    const missingManifests = new Map<string, FileNode>()
    for (const node of level) {
      if (node.type === 'directory') {
        const id = digestHex(node.digest)
        const entries = closure.directories.get(id)
        if (entries) expand(node, id, entries, next)
        else {
          const waiting = missingDirectories.get(id)
          if (waiting) waiting.push(node)
          else missingDirectories.set(id, [node])
        }
      } else if (node.type === 'file' && node.chunked) {
        const id = digestHex(node.digest)
        if (!closure.manifests.has(id)) missingManifests.set(id, node)
      }
    }
    if (missingDirectories.size === 0 && missingManifests.size === 0) {
      level = next
      continue
    }
    closure.roundTrips++
    await Promise.all([
      inBatches([...missingDirectories.values()], async (nodes) => {
        const first = nodes[0] as Extract<CasNode, { type: 'directory' }>
        const entries = await cas.getDirectory(first.digest, signal)
        const id = digestHex(first.digest)
        closure.directories.set(id, entries)
        for (const node of nodes) expand(node, id, entries, next)
      }),
      inBatches([...missingManifests.values()], async (node) => {
        closure.manifests.set(digestHex(node.digest), await cas.getManifest(node.digest, node.size, signal))
      }),
    ])
    level = next
  }
  return closure
}

import { NixcasError } from '../errors.ts'
import { digestHex, type Digest } from '../castore/digest.ts'
import { decodeDirectory } from '../castore/directory.ts'
import { checkManifestSize, decodeManifest, type ChunkRef } from '../castore/manifest.ts'
import type { CasNode, DirectoryEntry } from '../castore/node.ts'
import type { Cas } from '../cas/cas.ts'
import type { FileNode, TreeSource } from './layout.ts'

/** How many directories or manifests are fetched at once when there is no pack. */
const LEVEL_CONCURRENCY = 64

/** The directories and manifests under one root, fetched before any byte is rendered. */
export class Closure implements TreeSource {
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

  let level: CasNode[] = [root]
  while (level.length > 0) {
    const next: CasNode[] = []
    const missingDirectories: Digest[] = []
    const missingManifests: FileNode[] = []
    for (const node of level) {
      if (node.type === 'directory') {
        const entries = closure.directories.get(digestHex(node.digest))
        if (entries) next.push(...entries.map((entry) => entry.node))
        else missingDirectories.push(node.digest)
      } else if (node.type === 'file' && node.chunked && !closure.manifests.has(digestHex(node.digest))) {
        missingManifests.push(node)
      }
    }
    if (missingDirectories.length === 0 && missingManifests.length === 0) {
      level = next
      continue
    }
    closure.roundTrips++
    const fetched: CasNode[] = []
    await Promise.all([
      inBatches(missingDirectories, async (digest) => {
        const entries = await cas.getDirectory(digest, signal)
        closure.directories.set(digestHex(digest), entries)
        fetched.push(...entries.map((entry) => entry.node))
      }),
      inBatches(missingManifests, async (node) => {
        closure.manifests.set(digestHex(node.digest), await cas.getManifest(node.digest, node.size, signal))
      }),
    ])
    level = [...next, ...fetched]
  }
  return closure
}

import { createHash } from 'node:crypto'
import fc from 'fast-check'
import { digestOf } from '../../src/castore/digest.ts'
import { directoryDigest, encodeDirectory } from '../../src/castore/directory.ts'
import { encodeNarRecord } from '../../src/castore/nar-record.ts'
import { directoryNarSize, narSizeOf, type CasNode, type DirectoryEntry } from '../../src/castore/node.ts'
import type { NixHash } from '../../src/nix/hash.ts'
import type { NarEvent } from '../../src/nix/nar-format.ts'
import { writeNar } from '../../src/nix/nar-writer.ts'
import { encodeNixbase32 } from '../../src/nix/nixbase32.ts'
import type { Cas } from '../../src/cas/cas.ts'

/**
 * NARs made from events, without a file system: extreme shapes (a directory of many empty
 * files, a chain of nested directories) and random trees for property tests.
 */

/** The name of entry `index` of a wide directory: fixed width, so byte order is index order. */
export const wideName = (index: number): Buffer => Buffer.from(`f${String(index).padStart(7, '0')}`)

export function* wideEvents(entries: number): Generator<NarEvent> {
  yield { type: 'directory', name: null }
  for (let index = 0; index < entries; index++) yield { type: 'file', name: wideName(index), executable: false, size: 0 }
  yield { type: 'end' }
}

/** `depth` directories, each named `d` inside the previous, with one small file at the bottom. */
export function* deepEvents(depth: number, contents = Buffer.from('at the bottom\n')): Generator<NarEvent> {
  yield { type: 'directory', name: null }
  for (let level = 0; level < depth; level++) yield { type: 'directory', name: Buffer.from('d') }
  yield { type: 'file', name: Buffer.from('leaf'), executable: true, size: contents.length }
  yield { type: 'data', bytes: contents }
  for (let level = 0; level <= depth; level++) yield { type: 'end' }
}

/** The NAR of `events` in one buffer, with its hash (and in nixbase32, as served under /nar/). */
export async function narBytes(events: Iterable<NarEvent>): Promise<{ bytes: Buffer; hash: string; narHash: NixHash }> {
  const parts: Uint8Array[] = []
  const hasher = createHash('sha256')
  for await (const part of writeNar(events)) {
    parts.push(part)
    hasher.update(part)
  }
  const digest = hasher.digest()
  return { bytes: Buffer.concat(parts), hash: encodeNixbase32(digest), narHash: { algorithm: 'sha256', digest } }
}

/** The one directory of a wide directory of empty files, as the castore encodes it, and its node. */
export function wideDirectory(entries: number): { node: CasNode; encoding: Buffer } {
  const empty = digestOf(new Uint8Array(0))
  const list: DirectoryEntry[] = []
  for (let index = 0; index < entries; index++) list.push({ name: wideName(index), node: { type: 'file', digest: empty, size: 0, executable: false, chunked: false } })
  const encoding = encodeDirectory(list)
  return { node: { type: 'directory', digest: directoryDigest(encoding), size: directoryNarSize(list) }, encoding }
}

/**
 * Publishes the NAR of a wide directory of empty files straight into the castore, as an
 * ingest would (a record holding the one directory; empty files need no chunk), in a
 * fraction of the time: for tests of what is served, where the ingest is not measured.
 */
export async function storeWideNar(cas: Cas, entries: number, narHash: NixHash): Promise<CasNode> {
  const { node, encoding } = wideDirectory(entries)
  await cas.putNarRecord(narHash, encodeNarRecord({ narSize: narSizeOf(node), root: node, packs: [], directories: [encoding], blobs: [] }))
  return node
}

/** A tree as a test knows it, to compare what is served with. */
export type Tree =
  | { kind: 'file'; executable: boolean; contents: Uint8Array }
  | { kind: 'symlink'; target: Uint8Array }
  | { kind: 'directory'; entries: [Buffer, Tree][] }

/** Names from pieces that stress a listing: integer-like, `__proto__`, multi-byte, quotes, spaces and dots. */
const entryName = fc
  .array(fc.constantFrom('a', 'Z', '0', '1', '10', '9', '.', '-', '_', ' ', 'é', '日本', '\t', '"', '\\', '__proto__', 'constructor', 'toString'), { minLength: 1, maxLength: 4 })
  .map((parts) => Buffer.from(parts.join('')))
  .filter((bytes) => bytes.length <= 255 && bytes.toString() !== '.' && bytes.toString() !== '..')

/** Any small NAR tree: empty and larger files (several chunks, with small chunk sizes), symlinks, nested directories. */
export const { tree } = fc.letrec<{ tree: Tree; file: Tree; symlink: Tree; directory: Tree }>((tie) => ({
  tree: fc.oneof({ depthSize: 'small', withCrossShrink: true }, tie('file'), tie('symlink'), tie('directory')),
  file: fc.record({
    kind: fc.constant('file' as const),
    executable: fc.boolean(),
    contents: fc.oneof(fc.uint8Array({ maxLength: 24 }), fc.uint8Array({ maxLength: 5000 })),
  }),
  symlink: fc.record({
    kind: fc.constant('symlink' as const),
    target: fc.uint8Array({ minLength: 1, maxLength: 300 }).map((bytes) => bytes.map((byte) => byte || 0x2f)),
  }),
  directory: fc
    .uniqueArray(fc.tuple(entryName, tie('tree')), { maxLength: 6, selector: ([name]) => name.toString('latin1') })
    .map((entries) => ({ kind: 'directory' as const, entries: entries.sort(([a], [b]) => Buffer.compare(a, b)) })),
}))

/** The NAR events of a test tree (recursive: test trees are shallow). */
export function* eventsOf(node: Tree, name: Uint8Array | null = null): Generator<NarEvent> {
  if (node.kind === 'file') {
    yield { type: 'file', name, executable: node.executable, size: node.contents.length }
    if (node.contents.length > 0) yield { type: 'data', bytes: node.contents }
  } else if (node.kind === 'symlink') {
    yield { type: 'symlink', name, target: node.target }
  } else {
    yield { type: 'directory', name }
    for (const [child, subtree] of node.entries) yield* eventsOf(subtree, child)
    yield { type: 'end' }
  }
}

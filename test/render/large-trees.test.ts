import { createHash } from 'node:crypto'
import t, { type Test } from 'tap'
import { Cas } from '../../src/cas/cas.ts'
import { keys } from '../../src/cas/keys.ts'
import { digestOf } from '../../src/castore/digest.ts'
import { directoryDigest, encodeDirectory } from '../../src/castore/directory.ts'
import { directoryNarSize, type CasNode, type DirectoryEntry } from '../../src/castore/node.ts'
import { encodePack } from '../../src/castore/pack.ts'
import { ingestNar } from '../../src/ingest/ingest.ts'
import type { NarEvent } from '../../src/nix/nar-format.ts'
import { writeNar } from '../../src/nix/nar-writer.ts'
import { loadClosure } from '../../src/render/closure.ts'
import { layoutNar, type Layout, type TreeSource } from '../../src/render/layout.ts'
import { listingJson, type ListingNode } from '../../src/render/listing.ts'
import { loadLayout } from '../../src/render/load.ts'
import { renderNar } from '../../src/render/render.ts'
import { MemoryStore } from '../../src/stores/memory.ts'
import { CountingStore } from '../helpers/stores.ts'
import { collect } from '../helpers/streams.ts'
import { deepEvents, narBytes, storeWideNar, wideDirectory, wideEvents, wideName } from '../helpers/synthetic-nars.ts'

/**
 * Trees far past the call stack and the engine's argument limits, which broke rendering
 * and listing at about 120,000 entries and 5,000 levels. 200,000 entries by default;
 * NIXCAS_WIDE_ENTRIES=1000000 runs the full size (about 1.5 GB of memory).
 */
const WIDE = Number(process.env.NIXCAS_WIDE_ENTRIES ?? 200_000)
const DEEP = 10_000

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex')

async function renderedHash(cas: Cas, layout: Layout): Promise<string> {
  const hasher = createHash('sha256')
  for await (const piece of renderNar(cas, layout)) hasher.update(piece)
  return hasher.digest('hex')
}

function parseListing(root: CasNode, tree: TreeSource): { version: number; root: ListingNode } {
  let text = ''
  for (const piece of listingJson(root, tree)) text += piece
  return JSON.parse(text) as { version: number; root: ListingNode }
}

/** A regular file's narOffset points just past the "contents" token and the size, at its bytes. */
function checkNarOffset(t: Test, nar: Buffer, node: ListingNode | undefined, contents: Buffer, what: string): void {
  if (node?.type !== 'regular') {
    t.fail(`${what}: not a regular file`)
    return
  }
  t.equal(nar.subarray(node.narOffset - 16, node.narOffset - 8).toString('latin1'), 'contents', `${what}: narOffset follows "contents"`)
  t.equal(Number(nar.readBigUInt64LE(node.narOffset - 8)), contents.length, `${what}: and the size`)
  t.ok(nar.subarray(node.narOffset, node.narOffset + node.size).equals(contents), `${what}: the contents sit at narOffset`)
}

t.test(`a directory of ${WIDE} entries renders, ranges and lists, from its record or from objects of its own`, async (t) => {
  const nar = await narBytes(wideEvents(WIDE))
  const small = await narBytes(wideEvents(1000))
  const ingested = await ingestNar(new Cas(new MemoryStore('memory')), writeNar(wideEvents(1000)))
  t.same(wideDirectory(1000).node, ingested.root, 'the shortcut builds the tree the ingest builds')
  t.same(ingested.narHash, small.narHash)

  const store = new MemoryStore('memory')
  const cas = new Cas(store)
  const root = await storeWideNar(cas, WIDE, nar.narHash)
  const layout = await loadLayout(cas, nar.narHash)
  t.equal(layout.size, nar.bytes.length, 'the layout knows the size')
  t.equal(await renderedHash(cas, layout), sha256(nar.bytes), 'the whole NAR is byte-identical')
  for (const [start, end] of [[0, 100], [nar.bytes.length - 1000, nar.bytes.length], [1_234_567, 2_345_678]] as const) {
    t.ok((await collect(renderNar(cas, layout, { start, end }))).equals(nar.bytes.subarray(start, end)), `range ${start}-${end}`)
  }
  const record = await cas.getNarRecord(nar.narHash)
  if (!record?.tree) throw new Error('expected a record with its tree')
  const listing = parseListing(root, record.tree)
  if (listing.root.type !== 'directory') throw new Error('expected a directory listing')
  const names = Object.keys(listing.root.entries)
  t.equal(names.length, WIDE, 'every entry is listed')
  t.ok(names.every((name, index) => name === wideName(index).toString()), 'in NAR order')
  for (const index of [0, 1, WIDE >> 1, WIDE - 1]) {
    checkNarOffset(t, nar.bytes, listing.root.entries[wideName(index).toString()], Buffer.alloc(0), `entry ${index}`)
  }

  // Stores written before NAR records: the directory is an object of its own, with or without a closure pack.
  if (root.type !== 'directory') throw new Error('expected a directory')
  const { encoding } = wideDirectory(WIDE)
  await cas.putDirectory(root.digest, encoding)
  t.equal(await renderedHash(cas, layoutNar(root, await loadClosure(cas, root))), sha256(nar.bytes), 'from the directory object')
  await store.put(keys.closurePack(root.digest), encodePack([{ kind: 'directory', digest: root.digest, bytes: encoding }]))
  const closure = await loadClosure(cas, root)
  t.equal(await renderedHash(cas, layoutNar(root, closure)), sha256(nar.bytes), 'from a closure pack')
  const listed = parseListing(root, closure).root
  t.equal(listed.type === 'directory' ? Object.keys(listed.entries).length : 0, WIDE, 'and lists')
})

t.test(`a tree nested ${DEEP} deep renders, ranges and lists, from its record or a level at a time`, async (t) => {
  const contents = Buffer.from('at the bottom of it all\n')
  const nar = await narBytes(deepEvents(DEEP, contents))
  const store = new CountingStore(new MemoryStore('memory'))
  const cas = new Cas(store)
  const { root, narHash } = await ingestNar(cas, writeNar(deepEvents(DEEP, contents)))
  const layout = await loadLayout(cas, narHash)
  t.equal(await renderedHash(cas, layout), sha256(nar.bytes), 'byte-identical')
  const middle = nar.bytes.length >> 1
  t.ok((await collect(renderNar(cas, layout, { start: middle, end: middle + 5000 }))).equals(nar.bytes.subarray(middle, middle + 5000)), 'a range')

  const record = await cas.getNarRecord(narHash)
  if (!record?.tree) throw new Error('expected a record with its tree')
  let node: ListingNode = parseListing(root, record.tree).root
  for (let level = 0; level < DEEP; level++) {
    if (node.type !== 'directory' || !node.entries.d) throw new Error(`level ${level} is not the directory d`)
    node = node.entries.d
  }
  t.equal(node.type, 'directory', `${DEEP} levels down`)
  checkNarOffset(t, nar.bytes, node.type === 'directory' ? node.entries.leaf : undefined, contents, 'the leaf')

  // The same tree as objects of their own, with no closure pack: one round trip per level.
  const old = new Cas(new MemoryStore('memory'))
  const blob = digestOf(contents)
  await old.putChunk(blob, contents)
  let child: CasNode = { type: 'file', digest: blob, size: contents.length, executable: true, chunked: false }
  let name = Buffer.from('leaf')
  for (let level = 0; level <= DEEP; level++) {
    const entries: DirectoryEntry[] = [{ name, node: child }]
    const encoding = encodeDirectory(entries)
    await old.putDirectory(directoryDigest(encoding), encoding)
    child = { type: 'directory', digest: directoryDigest(encoding), size: directoryNarSize(entries) }
    name = Buffer.from('d')
  }
  t.same(child, root, 'the same root')
  const closure = await loadClosure(old, child)
  t.equal(closure.roundTrips, DEEP + 2, 'one round trip per level (and one for the missing pack)')
  t.equal(await renderedHash(old, layoutNar(child, closure)), sha256(nar.bytes), 'byte-identical')
})

t.test('a subtree repeated many times is fetched and expanded once', async (t) => {
  const links: DirectoryEntry[] = Array.from({ length: 20 }, (_, index) => ({
    name: Buffer.from(`link-${String(index).padStart(2, '0')}`),
    node: { type: 'symlink', target: Buffer.from(`target-${index}`) },
  }))
  const sub = encodeDirectory(links)
  const subNode: CasNode = { type: 'directory', digest: directoryDigest(sub), size: directoryNarSize(links) }
  const copies: DirectoryEntry[] = Array.from({ length: 500 }, (_, index) => ({ name: Buffer.from(`copy-${String(index).padStart(4, '0')}`), node: subNode }))
  const top = encodeDirectory(copies)
  const root: CasNode = { type: 'directory', digest: directoryDigest(top), size: directoryNarSize(copies) }
  const store = new CountingStore(new MemoryStore('memory'))
  const cas = new Cas(store)
  await cas.putDirectory(subNode.digest, sub)
  await cas.putDirectory(root.digest, top)
  const closure = await loadClosure(cas, root)
  t.equal(store.counts.get, 3, 'the pack (absent), the root, and the one distinct subdirectory')
  t.equal(closure.directories.size, 2)
  function* events(): Generator<NarEvent> {
    yield { type: 'directory', name: null }
    for (const copy of copies) {
      yield { type: 'directory', name: copy.name }
      for (const link of links) if (link.node.type === 'symlink') yield { type: 'symlink', name: link.name, target: link.node.target }
      yield { type: 'end' }
    }
    yield { type: 'end' }
  }
  t.equal(await renderedHash(cas, layoutNar(root, closure)), sha256((await narBytes(events())).bytes), 'byte-identical')
  const listing = parseListing(root, closure)
  t.equal(listing.root.type === 'directory' ? Object.keys(listing.root.entries).length : 0, 500, 'every copy listed')
})

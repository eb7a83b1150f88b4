import fc from 'fast-check'
import t from 'tap'
import { Cas } from '../../src/cas/cas.ts'
import { ingestNar } from '../../src/ingest/ingest.ts'
import { layoutNar, type TreeSource } from '../../src/render/layout.ts'
import { listingJson, type ListingNode } from '../../src/render/listing.ts'
import { treeOf } from '../../src/render/load.ts'
import { renderNar } from '../../src/render/render.ts'
import type { NixHash } from '../../src/nix/hash.ts'
import { MemoryStore } from '../../src/stores/memory.ts'
import { collect } from '../helpers/streams.ts'
import { eventsOf, narBytes, tree, type Tree } from '../helpers/synthetic-nars.ts'

/** The tree of a stored NAR, as the NAR service reads it. */
async function storedTree(cas: Cas, narHash: NixHash): Promise<TreeSource> {
  const record = await cas.getNarRecord(narHash)
  if (record === undefined) throw new Error('the ingested NAR has no record')
  return treeOf(cas, record)
}

/** Whether `listed` describes `node` exactly, its file offsets pointing at the contents in `nar`. */
function lists(listed: ListingNode | undefined, node: Tree, nar: Buffer): boolean {
  if (listed === undefined) return false
  if (node.kind === 'symlink') return listed.type === 'symlink' && listed.target === Buffer.from(node.target).toString('utf8')
  if (node.kind === 'file') {
    return (
      listed.type === 'regular' &&
      listed.size === node.contents.length &&
      (listed.executable === true) === node.executable &&
      Buffer.from(node.contents).equals(nar.subarray(listed.narOffset, listed.narOffset + listed.size)) &&
      nar.subarray(listed.narOffset - 16, listed.narOffset - 8).toString('latin1') === 'contents'
    )
  }
  if (listed.type !== 'directory') return false
  const names = node.entries.map(([name]) => name.toString('utf8'))
  return (
    Object.keys(listed.entries).length === names.length &&
    names.every((name, index) => Object.hasOwn(listed.entries, name) && lists(listed.entries[name], (node.entries[index] as [Buffer, Tree])[1], nar))
  )
}

t.test('every NAR the ingest accepts renders byte-identical, in any range, and lists', async () => {
  await fc.assert(
    fc.asyncProperty(tree, fc.nat(), fc.nat(), async (root, from, length) => {
      const nar = (await narBytes(eventsOf(root))).bytes
      const cas = new Cas(new MemoryStore('memory'))
      const ingested = await ingestNar(cas, [nar], { chunkSizes: { min: 64, avg: 256, max: 1024 } })
      const closure = await storedTree(cas, ingested.narHash)
      const layout = layoutNar(ingested.root, closure)
      if (!(await collect(renderNar(cas, layout))).equals(nar)) return false
      const start = from % (nar.length + 1)
      const end = Math.min(nar.length, start + (length % 10_000))
      if (!(await collect(renderNar(cas, layout, { start, end }))).equals(nar.subarray(start, end))) return false
      const listing = JSON.parse([...listingJson(ingested.root, closure)].join('')) as { version: number; root: ListingNode }
      return listing.version === 1 && lists(listing.root, root, nar)
    }),
    { numRuns: 300 },
  )
})

t.test('listing entries keep NAR order, and any name is an ordinary key', async (t) => {
  const names = ['10', '2', '__proto__', 'a']
  const root: Tree = { kind: 'directory', entries: names.map((name) => [Buffer.from(name), { kind: 'file', executable: false, contents: Buffer.from(name) }]) }
  const nar = (await narBytes(eventsOf(root))).bytes
  const cas = new Cas(new MemoryStore('memory'))
  const ingested = await ingestNar(cas, [nar])
  const text = [...listingJson(ingested.root, await storedTree(cas, ingested.narHash))].join('')
  const order = names.map((name) => text.indexOf(`"${name}":`))
  t.ok(order.every((at) => at > 0), 'every entry is in the text, __proto__ too')
  t.same([...order].sort((a, b) => a - b), order, 'in NAR order')
  t.ok(lists((JSON.parse(text) as { root: ListingNode }).root, root, nar), 'and each describes its file')
})

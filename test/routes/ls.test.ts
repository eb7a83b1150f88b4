import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import type { ListingNode } from '../../src/render/listing.ts'
import { build } from '../helpers/app.ts'
import { PATH_HASH, narOf, narinfoFor } from '../helpers/nar-samples.ts'
import { makeGoldenTrees, tempDir } from '../helpers/trees.ts'

t.test('the listing of a store path, with NAR offsets', async (t) => {
  const trees = await makeGoldenTrees(await tempDir(t))
  const root = trees.mixed as string
  const nar = await narOf(root)
  const app = await build(t)
  await app.inject({ method: 'PUT', url: '/nar/x.nar', payload: nar.bytes })
  await app.inject({ method: 'PUT', url: `/${PATH_HASH}.narinfo`, payload: narinfoFor(nar, PATH_HASH) })
  const response = await app.inject({ url: `/${PATH_HASH}.ls` })
  t.equal(response.statusCode, 200)
  t.match(response.headers['content-type'], /^application\/json/)
  const listing = response.json<{ version: number; root: ListingNode }>()
  t.equal(listing.version, 1)
  if (listing.root.type !== 'directory') throw new Error('expected a directory')
  t.same(Object.keys(listing.root.entries), ['abs-link', 'bin', 'share'])
  t.same(listing.root.entries['abs-link'], { type: 'symlink', target: '/etc/hostname' })
  const bin = listing.root.entries.bin
  if (bin?.type !== 'directory') throw new Error('expected bin/')
  const tool = bin.entries.tool
  if (tool?.type !== 'regular') throw new Error('expected bin/tool')
  t.equal(tool.executable, true)
  const contents = await readFile(join(root, 'bin', 'tool'))
  t.equal(tool.size, contents.length)
  t.ok(nar.bytes.subarray(tool.narOffset, tool.narOffset + tool.size).equals(contents), 'narOffset points at the contents in the NAR')
  t.equal((await app.inject({ url: `/${'0'.repeat(32)}.ls` })).statusCode, 404)
  t.equal((await app.inject({ url: '/nope.ls' })).statusCode, 400)
})

t.test('uploaded listings are accepted and ignored', async (t) => {
  const app = await build(t)
  t.equal((await app.inject({ method: 'PUT', url: `/${PATH_HASH}.ls`, payload: '{"version":1}', headers: { 'content-type': 'application/json' } })).statusCode, 204)
  t.equal((await app.inject({ method: 'PUT', url: '/bad.ls', payload: '{}' })).statusCode, 400)
  t.equal((await app.inject({ url: `/${PATH_HASH}.ls` })).statusCode, 404, 'the listing comes from the tree, not the upload')
})

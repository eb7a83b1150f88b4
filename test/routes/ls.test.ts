import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { brotliCompressSync, constants, gzipSync } from 'node:zlib'
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

t.test('uploaded listings are checked as they stream, then dropped', async (t) => {
  const app = await build(t)
  const listing = '{"version":1,"root":{"type":"regular","size":4,"narOffset":96}}'
  const put = (payload: string | Buffer, headers: Record<string, string> = {}, hash = PATH_HASH) =>
    app.inject({ method: 'PUT', url: `/${hash}.ls`, payload, headers: { 'content-type': 'application/json', ...headers } })
  t.equal((await put(listing)).statusCode, 204)
  t.equal((await put(brotliCompressSync(listing), { 'content-encoding': 'br' })).statusCode, 204, 'as Nix ≥ 2.32 sends it with ls-compression=br')
  t.equal((await put(gzipSync(listing), { 'content-encoding': 'gzip' })).statusCode, 204)
  const broken = await put('{"version":1,"root":{"type":"regular",')
  t.equal(broken.statusCode, 400)
  t.match(broken.body, /not a NAR listing.*ends early/)
  t.equal((await put('{"version":1}')).statusCode, 400, 'a listing has a root')
  t.equal((await put(listing, {}, 'bad')).statusCode, 400)
  t.equal((await put(listing, { 'content-encoding': 'compress' })).statusCode, 415)
  t.equal((await app.inject({ url: `/${PATH_HASH}.ls` })).statusCode, 404, 'the listing comes from the tree, not the upload')
})

t.test('a listing upload is bounded while it streams, also when it decompresses', async (t) => {
  const app = await build(t)
  // 80 MiB of spaces inside a valid listing: more than the 64 MiB limit once decoded, a few KiB on the wire.
  const bomb = brotliCompressSync(Buffer.concat([Buffer.from('{"version":1,"root":{}'), Buffer.alloc(80 * 2 ** 20, 0x20), Buffer.from('}')]), { params: { [constants.BROTLI_PARAM_QUALITY]: 1 } })
  t.ok(bomb.length < 1024 * 1024)
  const response = await app.inject({ method: 'PUT', url: `/${PATH_HASH}.ls`, payload: bomb, headers: { 'content-encoding': 'br' } })
  t.equal(response.statusCode, 413, response.body)
  t.match(response.body, /listing/)
})

import { randomBytes } from 'node:crypto'
import { cp, open, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { randomUUID } from 'node:crypto'
import { ingestNar } from '../../src/ingest/ingest.ts'
import { NarError } from '../../src/nix/nar-format.ts'
import { encodeNixbase32 } from '../../src/nix/nixbase32.ts'
import { Cas } from '../../src/cas/cas.ts'
import { FsStore } from '../../src/stores/fs.ts'
import { MemoryStore } from '../../src/stores/memory.ts'
import { S3Store } from '../../src/stores/s3.ts'
import type { ObjectStore } from '../../src/stores/store.ts'
import { ingestPath, renderToBuffer, storedBytes } from '../helpers/cas.ts'
import { nix, nixText, skipWithoutNix } from '../helpers/nix.ts'
import { startS3 } from '../helpers/s3.ts'
import { CountingStore } from '../helpers/stores.ts'
import { makeGoldenTrees, tempDir } from '../helpers/trees.ts'

/** A file of random bytes (nothing in it dedups), written in 4 MiB pieces. */
async function bigFile(path: string, size: number): Promise<void> {
  const handle = await open(path, 'w')
  for (let written = 0; written < size; written += 4 * 1024 * 1024) await handle.write(randomBytes(Math.min(4 * 1024 * 1024, size - written)))
  await handle.close()
}

type StoreMaker = (t: Test) => Promise<ObjectStore>

const backends: [string, StoreMaker][] = [
  ['memory', async () => new MemoryStore('memory')],
  ['fs', async (t) => new FsStore('disk', { path: await tempDir(t) })],
  ['s3rver', async (t) => {
    const server = await startS3(t)
    const store = new S3Store('bucket', { ...server.options, prefix: `${randomUUID()}/` })
    t.teardown(() => store.close())
    return store
  }],
]

t.test('ingest → render is byte-identical to nix-store --dump', { skip: skipWithoutNix }, async (t) => {
  const root = await tempDir(t)
  const trees = await makeGoldenTrees(join(root, 'golden'))
  await bigFile(join(root, 'file-200mb'), 200 * 1024 * 1024)
  for (const [label, make] of backends) {
    await t.test(label, async (t) => {
      const cas = new Cas(await make(t))
      for (const [name, path] of [...Object.entries(trees), ['200 MB file', join(root, 'file-200mb')] as const]) {
        const expected = await nix('nix-store', ['--dump', path])
        const result = await ingestPath(cas, path)
        t.equal(result.narSize, expected.length, `${name}: NAR size`)
        t.equal(encodeNixbase32(result.narHash.digest), await nixText('nix', ['hash', 'path', '--base32', path]), `${name}: NAR hash`)
        const rendered = await renderToBuffer(cas, result.root)
        t.ok(rendered.equals(expected), `${name}: rendered NAR is identical`)
      }
    })
  }
})

t.test('dedup: shared chunks are stored once', async (t) => {
  const dir = await tempDir(t)
  const first = join(dir, 'first')
  await makeGoldenTrees(first)
  await bigFile(join(first, 'big'), 8 * 1024 * 1024)
  const second = join(dir, 'second')
  await cp(first, second, { recursive: true, verbatimSymlinks: true })
  await writeFile(join(second, 'changed.txt'), 'one new file')
  const store = new MemoryStore('memory')
  const cas = new Cas(store)
  await ingestPath(cas, first)
  const once = await storedBytes(store, 'chunks/')
  await ingestPath(cas, second)
  const twice = await storedBytes(store, 'chunks/')
  t.ok(once.bytes > 13 * 1024 * 1024, `first tree: ${once.bytes} bytes in ${once.objects} chunks`)
  t.ok(once.bytes < 14 * 1024 * 1024, 'no chunk stored twice')
  t.equal(twice.bytes - once.bytes, 'one new file'.length, 'the second tree added only its new file')
  t.equal(twice.objects, once.objects + 1)
})

t.test('a malformed or truncated NAR fails typed and makes nothing visible', async (t) => {
  const dir = await tempDir(t)
  const trees = await makeGoldenTrees(dir)
  const { collect } = await import('../helpers/streams.ts')
  const { writeNar } = await import('../../src/nix/nar-writer.ts')
  const { dumpPath } = await import('../../src/fs/dump-path.ts')
  const nar = await collect(writeNar(dumpPath(trees.mixed as string)))
  const broken = [
    ['truncated', nar.subarray(0, nar.length - 100)],
    ['garbage at the end', Buffer.concat([nar, Buffer.alloc(8)])],
    ['bad magic', Buffer.concat([Buffer.from('x'), nar.subarray(1)])],
  ] as const
  for (const [label, bytes] of broken) {
    const store = new MemoryStore('memory')
    const error = await ingestNar(new Cas(store), [bytes]).then(() => null, (caught: unknown) => caught)
    t.type(error, NarError, `${label}: a NarError`)
    t.same((await storedBytes(store, 'nar/')).objects, 0, `${label}: no index entry`)
    t.same((await storedBytes(store, 'packs/')).objects, 0, `${label}: no pack`)
  }
  const store = new MemoryStore('memory')
  await t.rejects(ingestNar(new Cas(store), [nar], { maxNarSize: 100 }), { code: 'TOO_LARGE' })
})

t.test('uploads are bounded and hold the source back', async (t) => {
  const dir = await tempDir(t)
  await bigFile(join(dir, 'f'), 32 * 1024 * 1024)
  // Each upload HEADs first (chunks are large); the HEADs take 5 ms, so uploads overlap.
  const store = new CountingStore(new MemoryStore('memory'))
  store.delay = 5
  const result = await ingestPath(new Cas(store), join(dir, 'f'), { maxBytesInFlight: 4 * 1024 * 1024, maxUploads: 8 })
  t.equal(result.narSize, 32 * 1024 * 1024 + 112)
  t.ok(store.peakInFlight <= 8 && store.peakInFlight > 1, `at most 8 uploads at once (saw ${store.peakInFlight})`)
  t.ok(store.counts.head >= 32, 'every chunk was HEADed before its PUT')
})

t.test('concurrent uploads share one byte budget', async (t) => {
  const { ByteBudget } = await import('../../src/budget.ts')
  const dir = await tempDir(t)
  for (const name of ['a', 'b', 'c']) await bigFile(join(dir, name), 8 * 1024 * 1024)
  const store = new CountingStore(new MemoryStore('memory'))
  store.delay = 2
  const budget = new ByteBudget(2 * 1024 * 1024)
  const cas = new Cas(store)
  await Promise.all(['a', 'b', 'c'].map((name) => ingestPath(cas, join(dir, name), { budget })))
  t.ok(budget.peak <= 2 * 1024 * 1024 + 3 * 1024 * 1024, `peak ${budget.peak} bytes for three 8 MiB uploads`)
  t.equal(budget.inUse, 0)
})

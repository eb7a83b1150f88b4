import { randomBytes } from 'node:crypto'
import { cp, open, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { randomUUID } from 'node:crypto'
import { ingestNar, type IngestResult } from '../../src/ingest/ingest.ts'
import { BufferPool } from '../../src/buffer-pool.ts'
import { packBufferBytes } from '../../src/castore/data-pack.ts'
import { NarError } from '../../src/nix/nar-format.ts'
import { encodeNixbase32 } from '../../src/nix/nixbase32.ts'
import { Cas } from '../../src/cas/cas.ts'
import { DedupIndex } from '../../src/cas/dedup-index.ts'
import { keys } from '../../src/cas/keys.ts'
import { dumpPath } from '../../src/fs/dump-path.ts'
import { writeNar } from '../../src/nix/nar-writer.ts'
import { collect } from '../helpers/streams.ts'
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
        const rendered = await renderToBuffer(cas, result)
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
  const dedup = new DedupIndex(100_000)
  const firstResult = await ingestPath(cas, first, { dedup })
  const once = await storedBytes(store, 'data/')
  const secondResult = await ingestPath(cas, second, { dedup })
  const twice = await storedBytes(store, 'data/')
  t.ok(firstResult.storedBytes > 13 * 1024 * 1024, `first tree: ${firstResult.storedBytes} bytes in ${once.objects} packs`)
  t.ok(once.bytes < 14 * 1024 * 1024, 'no chunk stored twice')
  t.equal(secondResult.storedBytes, 'one new file'.length, 'the second tree added only its new file')
  t.equal(twice.objects, once.objects + 1, 'in one new pack')
  t.same(await renderToBuffer(cas, secondResult), await collect(writeNar(dumpPath(second))), 'and renders from both')

  // A new process learns what is stored from the index segments.
  const fresh = new DedupIndex(100_000)
  t.ok((await fresh.refresh(cas)) > 0, 'segments are read back')
  const third = join(dir, 'third')
  await cp(second, third, { recursive: true, verbatimSymlinks: true })
  await writeFile(join(third, 'changed.txt'), 'another new file')
  t.equal((await ingestPath(cas, third, { dedup: fresh })).storedBytes, 'another new file'.length, 'dedup survives a restart')

  // Segments are not synced to disk: one cut short by a crash is a hint lost, not a failure.
  await store.put(keys.indexSegment('0-cut-short'), Buffer.alloc(0))
  await store.put(keys.indexSegment('1-garbage'), Buffer.from('NCI1 not a segment at all'))
  const afterCrash = new DedupIndex(100_000)
  t.ok((await afterCrash.refresh(cas)) > 0, 'a refresh reads the good segments past the bad ones')
})

t.test('pack buffers from a shared pool are reused by later ingests, and every NAR stays intact', async (t) => {
  const MiB = 1024 * 1024
  const dir = await tempDir(t)
  const trees = ['one', 'two', 'three'].map((name) => join(dir, name))
  for (const tree of trees) {
    await makeGoldenTrees(tree)
    await bigFile(join(tree, 'big'), 3 * MiB)
  }
  const cas = new Cas(new MemoryStore('memory'))
  const packBuffers = new BufferPool(8 * MiB, { blockBytes: packBufferBytes(MiB) })
  const results = []
  for (const tree of trees) {
    results.push(await ingestPath(cas, tree, { packSize: MiB, packBuffers }))
    t.ok(packBuffers.freeSize > 0, `after ${tree}: full pack buffers wait in the pool`)
  }
  for (const [index, tree] of trees.entries()) {
    t.ok((await renderToBuffer(cas, results[index] as IngestResult)).equals(await collect(writeNar(dumpPath(tree)))), `${tree} renders byte-identical`)
  }
})

t.test('a malformed or truncated NAR fails typed and makes nothing visible', async (t) => {
  const dir = await tempDir(t)
  const trees = await makeGoldenTrees(dir)
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
    t.same((await storedBytes(store, 'nar/')).objects, 0, `${label}: no NAR record`)
  }
  const store = new MemoryStore('memory')
  await t.rejects(ingestNar(new Cas(store), [nar], { maxNarSize: 100 }), { code: 'TOO_LARGE' })
})

t.test('uploads are bounded and hold the source back', async (t) => {
  const dir = await tempDir(t)
  await bigFile(join(dir, 'f'), 32 * 1024 * 1024)
  const nar = await collect(writeNar(dumpPath(join(dir, 'f'))))
  // Pack puts are held until the ingest stops pulling its source: it is then waiting for
  // room, and every pack it is allowed to hold is being put. The source is in memory, so the
  // ingest runs on promises alone: when a turn of the event loop passes without a pull, it
  // is stalled. Packs are sealed below 1 MiB when the next chunk would not fit, so how many
  // are in flight varies with where chunks are cut: the bound is on bytes.
  let pulls = 0
  let sourceEnded = false
  async function* source(): AsyncGenerator<Uint8Array> {
    for (let offset = 0; offset < nar.length; offset += 64 * 1024) {
      pulls++
      yield nar.subarray(offset, offset + 64 * 1024)
    }
    sourceEnded = true
  }
  const held: (() => void)[] = []
  const releaseWhenStalled = (seen: number): void => {
    setImmediate(() => {
      if (pulls !== seen && !sourceEnded) return releaseWhenStalled(pulls)
      for (const release of held.splice(0)) release()
    })
  }
  const inner = new MemoryStore('memory')
  let putting = 0
  let peakPutting = 0
  let puttingBytes = 0
  let peakPuttingBytes = 0
  const slow = Object.assign(Object.create(inner) as MemoryStore, {
    put: async (key: string, bytes: Uint8Array): Promise<void> => {
      putting++
      puttingBytes += bytes.length
      peakPutting = Math.max(peakPutting, putting)
      peakPuttingBytes = Math.max(peakPuttingBytes, puttingBytes)
      if (!sourceEnded) {
        if (held.length === 0) releaseWhenStalled(pulls)
        await new Promise<void>((resolve) => held.push(resolve))
      }
      await inner.put(key, bytes)
      putting--
      puttingBytes -= bytes.length
    },
  })
  const result = await ingestNar(new Cas(slow), source(), { maxBytesInFlight: 4 * 1024 * 1024, maxUploads: 64, packSize: 1024 * 1024 })
  t.equal(result.narSize, 32 * 1024 * 1024 + 112)
  t.ok(result.packs >= 16, `${result.packs} packs`)
  // It stops for room only past 2 MiB in flight (the filling pack and the next chunk are at most 1 MiB each).
  // Each pack's trailer adds 36 bytes per chunk (chunks are at least 64 KiB) and 12 bytes.
  const trailers = Math.ceil((4 * 1024 * 1024) / (64 * 1024)) * 36 + 64 * 12
  t.ok(peakPuttingBytes > 2 * 1024 * 1024 && peakPuttingBytes <= 4 * 1024 * 1024 + trailers, `held back with 2 to 4 MiB of packs being put (saw ${peakPuttingBytes} bytes in ${peakPutting} puts)`)
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

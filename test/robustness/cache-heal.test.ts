import { randomBytes } from 'node:crypto'
import { cp, readFile, readdir, writeFile } from 'node:fs/promises'
import { join, relative } from 'node:path'
import t, { type Test } from 'tap'
import { Cas } from '../../src/cas/cas.ts'
import { keys } from '../../src/cas/keys.ts'
import { decodePack } from '../../src/castore/pack.ts'
import type { NixHash } from '../../src/nix/hash.ts'
import { decodeNixbase32 } from '../../src/nix/nixbase32.ts'
import { CacheStore } from '../../src/stores/cache.ts'
import { FsStore } from '../../src/stores/fs.ts'
import { MemoryStore } from '../../src/stores/memory.ts'
import { S3Store } from '../../src/stores/s3.ts'
import type { ObjectStore } from '../../src/stores/store.ts'
import { build } from '../helpers/app.ts'
import { ingestPath, renderToBuffer } from '../helpers/cas.ts'
import { captureLogger, silentLogger } from '../helpers/log.ts'
import { PATH_HASH, narOf, narinfoFor } from '../helpers/nar-samples.ts'
import { startS3 } from '../helpers/s3.ts'
import { CountingStore } from '../helpers/stores.ts'
import { makeGoldenTrees, tempDir } from '../helpers/trees.ts'

/** The first segment of the keys of one kind of object: where an fs store keeps them. */
const prefixOf = (key: string): string => key.slice(0, key.indexOf('/'))
const ZERO = Buffer.alloc(32)
const DATA_PACKS = prefixOf(keys.dataPack(ZERO))
const NAR_RECORDS = prefixOf(keys.narRecord({ algorithm: 'sha256', digest: ZERO }))

/** A small tree plus a file of several chunks. */
async function sampleTree(t: Test): Promise<string> {
  const dir = (await makeGoldenTrees(await tempDir(t))).mixed as string
  await writeFile(join(dir, 'share', 'big'), randomBytes(3 * 1024 * 1024))
  return dir
}

/** A far side that stands for a remote store: not trusted, so every read is checked against its digest. */
function remote(store: ObjectStore): CountingStore {
  const far = new CountingStore(store, 'bucket')
  far.trusted = false
  return far
}

/** Every object under one prefix of an fs store, as keys. */
async function storedKeys(root: string, prefix: string): Promise<string[]> {
  const entries = await readdir(join(root, prefix), { recursive: true, withFileTypes: true }).catch(() => [])
  return entries.filter((entry) => entry.isFile()).map((entry) => relative(root, join(entry.parentPath, entry.name)))
}

/** Flips one byte of an fs store's object in place, as a failing disk would. */
async function flipByte(root: string, key: string, at: number): Promise<void> {
  const path = join(root, key)
  const bytes = await readFile(path)
  bytes[at % bytes.length] = (bytes[at % bytes.length] as number) ^ 0x55
  await writeFile(path, bytes)
}

async function repaired(t: Test, near: ObjectStore, far: ObjectStore, keys: readonly string[]): Promise<void> {
  for (const key of keys) t.same(await near.get(key), await far.get(key), `${key}: near is repaired`)
}

t.test('Cas reads through a cache heal data packs and NAR records corrupted in near', async (t) => {
  const dir = await tempDir(t)
  const near = new FsStore('disk', { path: dir })
  const far = remote(new MemoryStore('bucket'))
  const { logger, lines } = captureLogger()
  const cas = new Cas(new CacheStore('main', near, far, logger))
  const nar = await ingestPath(cas, await sampleTree(t))
  const original = await renderToBuffer(cas, nar)

  // Packs are read in ranges: a bad range drops near's copy, which is rewritten from far's whole, checked pack.
  const packs = await storedKeys(dir, DATA_PACKS)
  t.ok(packs.length >= 1, `${packs.length} data packs in near`)
  for (const key of packs) await flipByte(dir, key, 100)
  t.ok((await renderToBuffer(cas, nar)).equals(original), 'every data pack corrupt in near: the NAR renders byte-identical')
  await repaired(t, near, far, packs)
  t.ok(lines().filter((line) => line.level === 50 && line.store === 'main' && line.near === 'disk').length >= packs.length, 'each corruption logged at error level, by name')

  // A record's digest is the NAR hash, known only after rendering: what a read checks is its form.
  const records = await storedKeys(dir, NAR_RECORDS)
  t.equal(records.length, 1)
  for (const key of records) await flipByte(dir, key, 0)
  t.ok((await renderToBuffer(cas, nar)).equals(original), 'a NAR record with a broken form in near: byte-identical')
  await repaired(t, near, far, records)
})

t.test('Cas reads through a cache heal every kind of object of a store written before data packs', async (t) => {
  const fixtures = new URL('../fixtures/', import.meta.url).pathname
  const { narHash: hash } = JSON.parse(await readFile(join(fixtures, 'v1-store.json'), 'utf8')) as { narHash: string }
  const expected = await readFile(join(fixtures, 'v1-store.nar'))
  const narHash: NixHash = { algorithm: 'sha256', digest: decodeNixbase32(hash, 32) }
  const dir = await tempDir(t)
  await cp(join(fixtures, 'v1-store'), join(dir, 'near'), { recursive: true })
  await cp(join(fixtures, 'v1-store'), join(dir, 'far'), { recursive: true })
  const near = new FsStore('disk', { path: join(dir, 'near') })
  const far = remote(new FsStore('bucket', { path: join(dir, 'far') }))
  const cas = new Cas(new CacheStore('main', near, far, silentLogger))
  t.ok((await renderToBuffer(cas, { narHash })).equals(expected), 'renders before')

  const chunks = await storedKeys(join(dir, 'near'), 'chunks')
  for (const [index, key] of chunks.entries()) await flipByte(join(dir, 'near'), key, index * 7919)
  t.ok((await renderToBuffer(cas, { narHash })).equals(expected), `all ${chunks.length} chunks corrupt in near: byte-identical`)
  await repaired(t, near, far, chunks)

  const [pack] = await storedKeys(join(dir, 'near'), 'packs')
  if (pack === undefined) throw new Error('no closure pack in the fixture')
  const packBytes = (await near.get(pack)) as Buffer
  const directory = decodePack(packBytes).find((record) => record.kind === 'directory')
  if (!directory) throw new Error('no directory in the closure pack')
  await flipByte(join(dir, 'near'), pack, packBytes.indexOf(directory.bytes) + 5)
  t.ok((await renderToBuffer(cas, { narHash })).equals(expected), 'a directory in the closure pack corrupt in near: byte-identical')
  await repaired(t, near, far, [pack])

  // Without the pack, directories and manifests are read one by one. A manifest has no
  // digest of its own (its blob's is checked once all its chunks are read), so what a
  // read checks is its form: here, its chunk count.
  await near.delete(pack)
  await far.delete(pack)
  const directories = await storedKeys(join(dir, 'near'), 'dirs')
  const manifests = await storedKeys(join(dir, 'near'), 'blobs')
  t.ok(directories.length >= 3 && manifests.length >= 1, `${directories.length} directories, ${manifests.length} manifests`)
  for (const [index, key] of directories.entries()) await flipByte(join(dir, 'near'), key, 9 + index * 31)
  for (const key of manifests) await flipByte(join(dir, 'near'), key, 4)
  t.ok((await renderToBuffer(cas, { narHash })).equals(expected), 'every directory and manifest corrupt in near: byte-identical')
  await repaired(t, near, far, [...directories, ...manifests])
})

t.test('corrupt far bytes are refused and never written into near', async (t) => {
  const dir = await tempDir(t)
  const near = new FsStore('disk', { path: dir })
  const far = remote(new MemoryStore('bucket'))
  const cas = new Cas(new CacheStore('main', near, far, silentLogger))
  const nar = await ingestPath(cas, await sampleTree(t))
  const original = await renderToBuffer(cas, nar)

  const [key] = await storedKeys(dir, DATA_PACKS)
  if (key === undefined) throw new Error('no data pack')
  const good = (await far.get(key)) as Buffer
  const bad = Buffer.from(good)
  bad[100] = (bad[100] as number) ^ 1
  await far.put(key, bad)
  await near.delete(key)
  await t.rejects(renderToBuffer(cas, nar), { code: 'CORRUPT_OBJECT', message: /"bucket" \(far side of "main"\)/ }, 'the render fails, naming far')
  t.equal(await near.head(key), undefined, 'near did not take the corrupt bytes')

  // Both sides corrupt: near's copy is dropped, far's refused.
  await near.put(key, bad)
  await t.rejects(renderToBuffer(cas, nar), { code: 'CORRUPT_OBJECT' })
  t.equal(await near.head(key), undefined, 'near holds nothing corrupt')

  await far.put(key, good)
  t.ok((await renderToBuffer(cas, nar)).equals(original), 'once far is repaired the render succeeds')
})

t.test('a NAR served through a cache (near disk, far S3) stays byte-identical after near is corrupted', async (t) => {
  const s3 = await startS3(t)
  const nearDir = join(await tempDir(t), 'near')
  const app = await build(t, {
    stores: {
      stores: {
        disk: { type: 'fs', path: nearDir },
        bucket: { type: 's3', ...s3.options },
        main: { type: 'cache', near: 'disk', far: 'bucket' },
      },
      root: 'main',
    },
  })
  const nar = await narOf(await sampleTree(t))
  const url = `/nar/${nar.hash}.nar`
  t.equal((await app.inject({ method: 'PUT', url, payload: nar.bytes })).statusCode, 201)
  t.equal((await app.inject({ method: 'PUT', url: `/${PATH_HASH}.narinfo`, payload: narinfoFor(nar, PATH_HASH) })).statusCode, 204)
  t.ok((await app.inject({ url })).rawPayload.equals(nar.bytes), 'served before')

  const packs = await storedKeys(nearDir, DATA_PACKS)
  t.ok(packs.length >= 1)
  for (const [index, key] of packs.entries()) await flipByte(nearDir, key, 1000 + index * 104729)
  for (let round = 1; round <= 2; round++) {
    const response = await app.inject({ url })
    t.equal(response.statusCode, 200)
    t.ok(response.rawPayload.equals(nar.bytes), `GET ${round}: byte-identical`)
  }
  const middle = Math.floor(nar.bytes.length / 2)
  const ranged = await app.inject({ url, headers: { range: `bytes=${middle}-${middle + 99_999}` } })
  t.equal(ranged.statusCode, 206)
  t.ok(ranged.rawPayload.equals(nar.bytes.subarray(middle, middle + 100_000)), 'a Range too')
  const far = new S3Store('bucket', s3.options)
  t.teardown(() => far.close())
  await repaired(t, new FsStore('disk', { path: nearDir }), far, packs)
})

/**
 * Synthetic stores for the GC benchmark, written object by object through the Cas on an
 * fs store (no NAR is ingested, so a million objects take minutes): paths in chains of
 * four (each references the one before), a third of the chains pinned; data packs shared
 * by neighbouring paths and a pool of packs every path draws from; index segments; packs
 * of aborted uploads; upload names whose NAR never came; and, for the old layout, trees of
 * one object per directory, manifest and chunk, plus chunks no tree names.
 */
import { truncate } from 'node:fs/promises'
import { join } from 'node:path'
import { pino } from 'pino'
import { Cas } from '../src/cas/cas.ts'
import { newSegmentName } from '../src/cas/dedup-index.ts'
import { keys } from '../src/cas/keys.ts'
import { digestOf } from '../src/castore/digest.ts'
import { encodeIndexSegment } from '../src/castore/index-segment.ts'
import { Pins } from '../src/lifecycle/pins.ts'
import { encodeNixbase32 } from '../src/nix/nixbase32.ts'
import { composeStores } from '../src/stores/compose.ts'
import { packChunks, writeOldLayoutPath, writePackedPath, type PackedChunk, type SyntheticPath } from '../test/helpers/synthetic-store.ts'

export interface StoreShape {
  /** Data-pack layout: paths, and the chunks each references (a fifth of them from the shared pool). */
  packedPaths: number
  chunksPerPath: number
  /** Old layout: paths of `oldFiles` files of `oldChunks` chunk objects each, and chunk objects no tree names. */
  oldPaths: number
  oldFiles: number
  oldChunks: number
  orphanChunks: number
  /** Packs (with index segments) of uploads that never got a record, and upload names of NARs never stored. */
  abortedPacks: number
  staleUploads: number
}

export interface BuiltStore {
  objects: number
  chunkReferences: number
  pinnedPaths: number
  seconds: number
}

export const CHUNKS_PER_PACK = 256
const CHUNK_SIZE = 64 * 1024
const CHAIN = 4
/** Paths written at once (each is a handful of puts, or dozens for the old layout). */
const CONCURRENCY = 32

/** Runs `work` for 0..count-1, `CONCURRENCY` at a time, in order of start. */
async function pool(count: number, work: (index: number) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, count) }, async () => {
    while (next < count) await work(next++)
  }))
}

export async function buildStore(dir: string, shape: StoreShape): Promise<BuiltStore> {
  const started = process.hrtime.bigint()
  const stack = composeStores({ stores: { disk: { type: 'fs', path: dir, fsync: false } }, root: 'disk' }, { logger: pino({ level: 'warn' }) })
  const cas = new Cas(stack.root)
  let objects = 0
  /** Packs are written with a few bytes and then extended (sparse), so their listed sizes are real and the disk stays empty. */
  const putPack = async (pack: Buffer, chunks: number): Promise<void> => {
    await cas.putDataPack(pack, Buffer.alloc(16))
    await truncate(join(dir, keys.dataPack(pack)), chunks * (CHUNK_SIZE + 36) + 12)
    objects++
  }

  const shared = Array.from({ length: 64 }, (_, index) => packChunks(`shared ${index}`, CHUNKS_PER_PACK, CHUNK_SIZE))
  for (const { pack } of shared) await putPack(pack, CHUNKS_PER_PACK)
  const sharedPerPath = Math.floor(shape.chunksPerPath / 5)
  const ownPerPath = shape.chunksPerPath - sharedPerPath
  /** Own chunks are cut from packs in order, so neighbouring paths share a pack (and a deleted one leaves it partly dead). */
  const ownChunks = (index: number): PackedChunk[] => {
    const chunks: PackedChunk[] = []
    for (let n = index * ownPerPath; n < (index + 1) * ownPerPath; n++) {
      const pack = Math.floor(n / CHUNKS_PER_PACK)
      const slot = n % CHUNKS_PER_PACK
      chunks.push({ digest: digestOf(Buffer.from(`own ${n}`)), size: CHUNK_SIZE, pack: digestOf(Buffer.from(`pack own ${pack}`)), offset: slot * CHUNK_SIZE })
    }
    return chunks
  }
  const ownPacks = Math.ceil((shape.packedPaths * ownPerPath) / CHUNKS_PER_PACK)
  await pool(ownPacks, (pack) => putPack(digestOf(Buffer.from(`pack own ${pack}`)), CHUNKS_PER_PACK))

  const packed: SyntheticPath[] = []
  const tops: SyntheticPath[] = []
  // Chains are written one after another (a path after the one it references), chains in parallel.
  const chains = Math.ceil(shape.packedPaths / CHAIN)
  await pool(chains, async (chain) => {
    let previous: SyntheticPath | undefined
    for (let index = chain * CHAIN; index < Math.min(shape.packedPaths, (chain + 1) * CHAIN); index++) {
      const own = ownChunks(index)
      const fromPool = Array.from({ length: sharedPerPath }, (_, n) => (shared[(index + n) % shared.length] as { chunks: PackedChunk[] }).chunks[(index * 7 + n * 13) % CHUNKS_PER_PACK] as PackedChunk)
      const chunks = [...own, ...fromPool]
      // Files of up to 16 chunks each.
      const files = Array.from({ length: Math.ceil(chunks.length / 16) }, (_, file) => chunks.slice(file * 16, file * 16 + 16))
      const path = await writePackedPath(cas, `packed ${index}`, files, previous ? [previous] : [])
      await cas.putIndexSegment(newSegmentName(), encodeIndexSegment(own))
      objects += 4
      packed[index] = path
      previous = path
    }
    if (previous && chain % 3 === 0) tops.push(previous)
  })

  const oldTops: SyntheticPath[] = []
  await pool(Math.ceil(shape.oldPaths / CHAIN), async (chain) => {
    let previous: SyntheticPath | undefined
    for (let index = chain * CHAIN; index < Math.min(shape.oldPaths, (chain + 1) * CHAIN); index++) {
      previous = await writeOldLayoutPath(cas, `old ${index}`, { files: shape.oldFiles, chunksPerFile: shape.oldChunks, chunkSize: 64 }, previous ? [previous] : [])
      objects += shape.oldFiles * (shape.oldChunks + 1) + 5
    }
    if (previous && chain % 3 === 0) oldTops.push(previous)
  })
  await pool(shape.orphanChunks, async (index) => {
    const bytes = Buffer.from(`orphan chunk ${index}`)
    await cas.putChunk(digestOf(bytes), bytes)
    objects++
  })

  await pool(shape.abortedPacks, async (index) => {
    const { pack, chunks } = packChunks(`aborted ${index}`, CHUNKS_PER_PACK, CHUNK_SIZE)
    await putPack(pack, CHUNKS_PER_PACK)
    await cas.putIndexSegment(newSegmentName(), encodeIndexSegment(chunks))
    objects++
  })
  await pool(shape.staleUploads, async (index) => {
    const narHash = { algorithm: 'sha256' as const, digest: digestOf(Buffer.from(`never stored ${index}`)) }
    const stem = encodeNixbase32(narHash.digest)
    await cas.putUpload(stem, `${stem}.nar.zst`, { narHash })
    objects++
  })

  const pins = new Pins(cas.store, '/nix/store')
  const pinned = [...tops, ...oldTops].map((path) => path.storePath)
  for (let start = 0; start < pinned.length; start += 1000) {
    await pins.add(`bench-${start / 1000}`, pinned.slice(start, start + 1000))
    objects++
  }
  await stack.close()
  return { objects, chunkReferences: shape.packedPaths * shape.chunksPerPath + shape.oldPaths * shape.oldFiles * shape.oldChunks, pinnedPaths: pinned.length, seconds: Number(process.hrtime.bigint() - started) / 1e9 }
}

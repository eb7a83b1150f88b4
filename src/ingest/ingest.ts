import type { ByteBudget } from '../budget.ts'
import type { BufferPool } from '../buffer-pool.ts'
import { NixcasError } from '../errors.ts'
import type { Cas } from '../cas/cas.ts'
import type { Lease } from '../cas/lease.ts'
import type { DedupIndex } from '../cas/dedup-index.ts'
import type { ChunkSizes } from '../castore/chunker.ts'
import { digestHex, type Digest } from '../castore/digest.ts'
import { directoryDigest, encodeDirectory } from '../castore/directory.ts'
import type { IndexedChunk } from '../castore/index-segment.ts'
import { encodeNarRecord, type BlobChunks } from '../castore/nar-record.ts'
import { directoryNarSize, narSizeOf, type CasNode, type DirectoryEntry } from '../castore/node.ts'
import { formatNixHash, hashesEqual, sha256Hash, type NixHash } from '../nix/hash.ts'
import type { IngestEvent } from './events.ts'
import { PackSink } from './pack-sink.ts'
import { parseNarEvents } from './parse/parse.ts'

export interface IngestOptions {
  chunkSizes?: ChunkSizes
  /** Data packs are sealed at this size (default 16 MiB). */
  packSize?: number
  /** Bytes of new chunks one ingest holds at once, filling or uploading (default 64 MiB). */
  maxBytesInFlight?: number
  /** Pack uploads in flight for one ingest. */
  maxUploads?: number
  /** Refuse NARs larger than this (decoded). */
  maxNarSize?: number
  signal?: AbortSignal
  /** Called with the NAR bytes read so far (metrics). */
  onBytes?: (count: number) => void
  /** Shared by all uploads at once. */
  budget?: ByteBudget
  /** Pack buffers shared by all uploads (PackSinkOptions.buffers). */
  packBuffers?: BufferPool
  /** Known chunks, shared by every ingest; without one, chunks dedup only within the NAR. */
  dedup?: DedupIndex
  /**
   * The writer's lease (cas/lease.ts): with one, a chunk is deduplicated against an older
   * pack only once the lease claims that pack and no garbage collection is deleting, so a
   * concurrent GC never removes a pack this NAR's record is about to name.
   */
  lease?: Lease
  /** The NAR must have this hash (its upload name says so); checked before anything is published. */
  expectedNarHash?: NixHash
  /** More to write once the NAR checked out (the name it was uploaded under), beside its record. */
  publish?: (result: IngestResult) => Promise<void>
}

export interface IngestResult {
  root: CasNode
  narHash: NixHash
  narSize: number
  /** Bytes of chunks this ingest stored (the rest were already stored). */
  storedBytes: number
  packs: number
}

export const DEFAULT_PACK_SIZE = 16 * 1024 * 1024

interface OpenFile {
  name: Buffer | null
  executable: boolean
  size: number
  chunks: { digest: Digest; size: number; pack: number; offset: number }[]
}

/**
 * Ingest events → data packs and one NAR record. New chunks go into this ingest's packs in
 * NAR order; chunks already stored (this NAR, or the dedup index) are referenced where they
 * are. Directories live only in the record. The record is written last: until then the NAR
 * is not visible, and a NAR that fails any check (including `expectedNarHash`) is never
 * published — its packs are unreferenced, for garbage collection.
 */
export async function storeNar(cas: Cas, events: AsyncIterable<IngestEvent>, options: IngestOptions = {}): Promise<IngestResult> {
  const sink = new PackSink(cas, {
    packSize: options.packSize ?? DEFAULT_PACK_SIZE,
    maxBytesHeld: options.maxBytesInFlight ?? 64 * 1024 * 1024,
    maxUploads: options.maxUploads ?? 4,
    budget: options.budget,
    signal: options.signal,
    buffers: options.packBuffers,
  })
  /** Packs of this record by digest hex: those this ingest fills, and older ones it references. */
  const packIndex = new Map<number | string, number>()
  const stored = new Map<string, { pack: number; offset: number }>()
  const referenced: Digest[] = []
  const newChunks: { digest: Digest; size: number; pack: number; offset: number }[] = []
  const blobs = new Map<string, BlobChunks>()
  const directories = new Map<string, Uint8Array>()
  const stack: { name: Buffer | null; entries: DirectoryEntry[] }[] = []
  let root: CasNode | undefined
  let file: OpenFile | undefined
  let done: { narHash: NixHash; narSize: number } | undefined
  let storedBytes = 0
  /** Older packs this ingest asked its lease about, by digest hex: whether it may reference them. */
  const usablePacks = new Map<string, boolean>()
  const mayReference = async (pack: Digest): Promise<boolean> => {
    const lease = options.lease
    const key = digestHex(pack)
    if (lease === undefined || packIndex.has(key)) return true
    let usable = usablePacks.get(key)
    if (usable === undefined) usablePacks.set(key, (usable = await lease.mayUsePack(pack, options.signal)))
    return usable
  }

  const attach = (name: Buffer | null, node: CasNode): void => {
    const parent = stack.at(-1)
    if (parent && name) parent.entries.push({ name, node })
    else root = node
  }
  /** Index of an existing pack in this record's pack table (after the packs this ingest fills). */
  const existingPack = (pack: Digest): number => {
    const key = digestHex(pack)
    let index = packIndex.get(key)
    if (index === undefined) {
      index = -1 - referenced.length
      referenced.push(pack)
      packIndex.set(key, index)
    }
    return index
  }

  try {
    for await (const event of events) {
      switch (event.type) {
        case 'file':
          file = { name: event.name && Buffer.from(event.name), executable: event.executable, size: event.size, chunks: [] }
          break
        case 'chunk': {
          const current = file as OpenFile
          const digest = Buffer.from(event.digest.buffer, event.digest.byteOffset, event.digest.byteLength)
          const key = digest.toString('latin1')
          let where = stored.get(key)
          if (where === undefined) {
            const known = options.dedup?.get(digest)
            if (known !== undefined && known.size === event.bytes.length && (await mayReference(known.pack))) {
              where = { pack: existingPack(known.pack), offset: known.offset }
            } else {
              where = await sink.add(digest, event.bytes)
              newChunks.push({ digest, size: event.bytes.length, ...where })
              storedBytes += event.bytes.length
            }
            stored.set(key, where)
          }
          current.chunks.push({ digest, size: event.bytes.length, ...where })
          break
        }
        case 'repeat': {
          const digest = Buffer.from(event.digest.buffer, event.digest.byteOffset, event.digest.byteLength)
          const where = stored.get(digest.toString('latin1'))
          if (where === undefined) throw new NixcasError('INTERNAL', `a repeated chunk ${digestHex(digest)} that was never sent`)
          ;(file as OpenFile).chunks.push({ digest, size: event.size, ...where })
          break
        }
        case 'fileEnd': {
          const current = file as OpenFile
          const digest = Buffer.from(event.digest.buffer, event.digest.byteOffset, event.digest.byteLength)
          if (current.size > 0 && !blobs.has(digestHex(digest))) blobs.set(digestHex(digest), { digest, chunks: current.chunks })
          attach(current.name, { type: 'file', digest, size: current.size, executable: current.executable, chunked: current.chunks.length > 1 })
          file = undefined
          break
        }
        case 'symlink':
          attach(event.name && Buffer.from(event.name), { type: 'symlink', target: Buffer.from(event.target) })
          break
        case 'directory':
          stack.push({ name: event.name && Buffer.from(event.name), entries: [] })
          break
        case 'end': {
          const directory = stack.pop() as { name: Buffer | null; entries: DirectoryEntry[] }
          const encoding = encodeDirectory(directory.entries)
          const digest = directoryDigest(encoding)
          directories.set(digestHex(digest), encoding)
          attach(directory.name, { type: 'directory', digest, size: directoryNarSize(directory.entries) })
          break
        }
        case 'done':
          done = { narHash: sha256Hash(Buffer.from(event.narHash)), narSize: event.narSize }
          options.onBytes?.(event.narSize)
          break
      }
    }
    if (done === undefined || root === undefined) throw new NixcasError('BAD_NAR', 'the NAR ended before it was complete')
    if (narSizeOf(root) !== done.narSize) throw new NixcasError('INTERNAL', `tree size ${narSizeOf(root)} differs from NAR size ${done.narSize}`)
    if (options.expectedNarHash && !hashesEqual(options.expectedNarHash, done.narHash)) {
      throw new NixcasError('BAD_REQUEST', `the uploaded NAR's hash ${formatNixHash(done.narHash)} does not match its name (${formatNixHash(options.expectedNarHash)})`)
    }
  } catch (error) {
    await sink.abort(error)
    throw error
  }

  const filled = await sink.finish()
  // Pack table: packs this ingest filled (indices 0…), then existing ones it references (-1, -2, … → after them).
  const table = [...filled, ...referenced]
  const resolve = (pack: number): number => (pack >= 0 ? pack : filled.length - 1 - pack)
  const record = encodeNarRecord({
    narSize: done.narSize,
    root,
    packs: table,
    directories: [...directories.values()],
    blobs: [...blobs.values()].map((blob) => ({ digest: blob.digest, chunks: blob.chunks.map((chunk) => ({ ...chunk, pack: resolve(chunk.pack) })) })),
  })
  const indexed: IndexedChunk[] = newChunks.map((chunk) => ({ digest: chunk.digest, size: chunk.size, pack: table[resolve(chunk.pack)] as Digest, offset: chunk.offset }))
  const result = { root, narHash: done.narHash, narSize: done.narSize, storedBytes, packs: filled.length }
  // Every pack is stored: the record, the index segment and what the caller publishes name
  // only those, and none of them relies on another, so they are written at once.
  await Promise.all([cas.putNarRecord(done.narHash, record), options.dedup?.publish(cas, indexed), options.publish?.(result)])
  return result
}

/** Ingests an uncompressed NAR stream in this thread (tests, benchmarks, tools). */
export function ingestNar(cas: Cas, source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, options: IngestOptions = {}): Promise<IngestResult> {
  async function* bytes(): AsyncGenerator<Uint8Array> {
    yield* source
  }
  const events = parseNarEvents(bytes(), { method: 'none', chunkSizes: options.chunkSizes, maxNarSize: options.maxNarSize, signal: options.signal })
  return storeNar(cas, events, options)
}

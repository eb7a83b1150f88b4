import { createHash } from 'node:crypto'
import type { ByteBudget } from '../budget.ts'
import { NixcasError } from '../errors.ts'
import { Chunker, DEFAULT_CHUNK_SIZES, type ChunkSizes } from '../castore/chunker.ts'
import { DigestStream, digestHex, digestOf } from '../castore/digest.ts'
import { directoryDigest, encodeDirectory } from '../castore/directory.ts'
import { encodeManifest, type ChunkRef } from '../castore/manifest.ts'
import { directoryNarSize, narSizeOf, type CasNode, type DirectoryEntry } from '../castore/node.ts'
import { encodePack, type PackRecord } from '../castore/pack.ts'
import { sha256Hash, type NixHash } from '../nix/hash.ts'
import { readNar } from '../nix/nar-reader.ts'
import type { Cas } from '../cas/cas.ts'
import { UploadPool } from './upload-pool.ts'

export interface IngestOptions {
  chunkSizes?: ChunkSizes
  /** Bytes of chunks being uploaded at once; the NAR source waits beyond it. */
  maxBytesInFlight?: number
  maxUploads?: number
  /** Chunks at least this large are HEADed first and not sent when already stored. */
  headThreshold?: number
  /** Refuse NARs larger than this. */
  maxNarSize?: number
  signal?: AbortSignal
  /** Called with the NAR bytes read so far (metrics). */
  onBytes?: (count: number) => void
  /** Shared by all uploads at once. */
  budget?: ByteBudget
}

export interface IngestResult {
  root: CasNode
  narHash: NixHash
  narSize: number
}

interface FileState {
  name: Buffer | null
  executable: boolean
  size: number
  remaining: number
  chunker: Chunker
  hasher: DigestStream
  chunks: ChunkRef[]
}

/**
 * NAR stream → content-addressed tree. Files are chunked as they stream and chunks
 * uploaded concurrently (bounded), directories written bottom-up, then the closure pack
 * and, last, the narhash index entry: until that entry exists the NAR is not visible.
 * A malformed NAR fails with the reader's typed error and writes no index entry.
 */
export async function ingestNar(cas: Cas, source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, options: IngestOptions = {}): Promise<IngestResult> {
  const sizes = options.chunkSizes ?? DEFAULT_CHUNK_SIZES
  const headThreshold = options.headThreshold ?? 16 * 1024
  const pool = new UploadPool(options.maxBytesInFlight ?? 64 * 1024 * 1024, options.maxUploads ?? 32, options.signal, options.budget)
  const narHasher = createHash('sha256')
  let narSize = 0
  const maxNarSize = options.maxNarSize ?? Number.MAX_SAFE_INTEGER

  async function* tapped(): AsyncGenerator<Uint8Array> {
    for await (const bytes of source) {
      narSize += bytes.length
      if (narSize > maxNarSize) throw new NixcasError('TOO_LARGE', `the NAR is larger than the limit of ${maxNarSize} bytes`)
      narHasher.update(bytes)
      options.onBytes?.(bytes.length)
      yield bytes
    }
  }

  const seen = new Set<string>()
  const records: PackRecord[] = []
  const uploadChunk = async (bytes: Uint8Array): Promise<ChunkRef> => {
    const digest = digestOf(bytes)
    const id = digestHex(digest)
    if (!seen.has(id)) {
      seen.add(id)
      await pool.add(bytes.length, async (signal) => {
        if (bytes.length >= headThreshold && (await cas.hasChunk(digest, signal))) return
        await cas.putChunk(digest, bytes, signal)
      })
    }
    return { digest, size: bytes.length }
  }

  const stack: { name: Buffer | null; entries: DirectoryEntry[] }[] = []
  let root: CasNode | undefined
  const attach = (name: Buffer | null, node: CasNode): void => {
    const parent = stack.at(-1)
    if (parent && name) parent.entries.push({ name, node })
    else root = node
  }

  const finishFile = async (file: FileState): Promise<void> => {
    for (const chunk of file.chunker.finish()) file.chunks.push(await uploadChunk(chunk))
    const digest = file.hasher.digest()
    const chunked = file.chunks.length > 1
    if (chunked) {
      const manifest = encodeManifest(file.chunks)
      records.push({ kind: 'manifest', digest, bytes: manifest })
      await pool.add(manifest.length, () => cas.putManifest(digest, manifest))
    }
    attach(file.name, { type: 'file', digest, size: file.size, executable: file.executable, chunked })
  }

  let file: FileState | undefined
  try {
    for await (const event of readNar(tapped())) {
      switch (event.type) {
        case 'file':
          file = {
            name: event.name && Buffer.from(event.name),
            executable: event.executable,
            size: event.size,
            remaining: event.size,
            chunker: new Chunker(sizes),
            hasher: new DigestStream(),
            chunks: [],
          }
          if (file.remaining === 0) await finishFile(file)
          break
        case 'data': {
          const current = file as FileState
          current.hasher.update(event.bytes)
          for (const chunk of current.chunker.push(event.bytes)) current.chunks.push(await uploadChunk(chunk))
          current.remaining -= event.bytes.length
          if (current.remaining === 0) await finishFile(current)
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
          records.push({ kind: 'directory', digest, bytes: encoding })
          await pool.add(encoding.length, () => cas.putDirectory(digest, encoding))
          attach(directory.name, { type: 'directory', digest, size: directoryNarSize(directory.entries) })
          break
        }
      }
    }
    await pool.drain()
  } catch (error) {
    await pool.abort(error)
    throw error
  }

  const finalRoot = root as CasNode
  if (narSizeOf(finalRoot) !== narSize) throw new NixcasError('BAD_NAR', `internal: tree size ${narSizeOf(finalRoot)} differs from NAR size ${narSize}`)
  if (records.length > 0 && finalRoot.type !== 'symlink') await cas.putPack(finalRoot.digest, encodePack(records))
  const narHash = sha256Hash(narHasher.digest())
  await cas.putNarIndex(narHash, { narSize, root: finalRoot })
  return { root: finalRoot, narHash, narSize }
}


import { createHash, randomBytes } from 'node:crypto'
import type { Cas } from '../../src/cas/cas.ts'
import { keys } from '../../src/cas/keys.ts'
import { digestOf, type Digest } from '../../src/castore/digest.ts'
import { directoryDigest, encodeDirectory } from '../../src/castore/directory.ts'
import { encodeManifest } from '../../src/castore/manifest.ts'
import { encodeNarRecord, type BlobChunks } from '../../src/castore/nar-record.ts'
import { directoryNarSize, narSizeOf, type CasNode, type DirectoryEntry } from '../../src/castore/node.ts'
import { encodePack, type PackRecord } from '../../src/castore/pack.ts'
import { encodeNarIndexEntry } from '../../src/castore/path-info.ts'
import type { NixHash } from '../../src/nix/hash.ts'
import { encodeNixbase32 } from '../../src/nix/nixbase32.ts'
import { loadClosure } from '../../src/render/closure.ts'
import { layoutNar } from '../../src/render/layout.ts'
import { renderNar } from '../../src/render/render.ts'

/**
 * Stores written object by object through the Cas, without ingesting NARs: what the GC
 * benchmark fills a million objects with in minutes, and what tests of the old layout
 * (one object per directory, manifest and chunk) use, since ingest no longer writes it.
 */

/** A path written here: what pins, references and checks need. */
export interface SyntheticPath {
  hash: string
  base: string
  storePath: string
  narHash: NixHash
}

/** A chunk inside a data pack, as a NAR record names it. */
export interface PackedChunk {
  digest: Digest
  size: number
  pack: Digest
  offset: number
}

const fileName = (index: number): Buffer => Buffer.from(`f${String(index).padStart(5, '0')}`)

/** A store path named after `seed` (the same seed, the same path). */
export function syntheticPath(seed: string, name: string, narHash: NixHash): SyntheticPath {
  const hash = encodeNixbase32(createHash('sha256').update(seed).digest().subarray(0, 20))
  const base = `${hash}-${name}`
  return { hash, base, storePath: `/nix/store/${base}`, narHash }
}

/** The chunks of a data pack of `count` chunks of `size` bytes, back to back; the pack's digest stands for its bytes. */
export function packChunks(seed: string, count: number, size: number): { pack: Digest; chunks: PackedChunk[] } {
  const pack = digestOf(Buffer.from(`pack ${seed}`))
  const chunks = Array.from({ length: count }, (_, index) => ({ digest: digestOf(Buffer.from(`chunk ${seed} ${index}`)), size, pack, offset: index * size }))
  return { pack, chunks }
}

/** One directory root holding one file per chunk list: its encoding and node. */
function rootOf(files: readonly { digest: Digest; size: number; chunked: boolean }[]): { encoding: Buffer; root: CasNode } {
  const entries: DirectoryEntry[] = files.map((file, index) => ({ name: fileName(index), node: { type: 'file', digest: file.digest, size: file.size, executable: false, chunked: file.chunked } }))
  const encoding = encodeDirectory(entries)
  return { encoding, root: { type: 'directory', digest: directoryDigest(encoding), size: directoryNarSize(entries) } }
}

async function putPathInfo(cas: Cas, path: SyntheticPath, narSize: number, root: CasNode, references: readonly SyntheticPath[]): Promise<void> {
  await cas.putPathInfo(path.hash, { storePath: path.storePath, narHash: path.narHash, narSize, references: references.map((reference) => reference.base).sort(), signatures: [], root })
  const stem = encodeNixbase32(path.narHash.digest)
  await cas.putUpload(stem, `${stem}.nar.xz`, { narHash: path.narHash })
}

/**
 * A path of the data-pack layout: its NAR record names `files` (each a list of chunks in
 * packs written elsewhere), its PathInfo and upload name. The NAR hash is made up (the
 * benchmark never renders these); the record is well formed.
 */
export async function writePackedPath(cas: Cas, seed: string, files: readonly (readonly PackedChunk[])[], references: readonly SyntheticPath[] = []): Promise<SyntheticPath> {
  const packs = new Map<string, number>()
  const blobs: BlobChunks[] = files.map((chunks) => ({
    digest: digestOf(Buffer.concat(chunks.map((chunk) => chunk.digest))),
    chunks: chunks.map((chunk) => {
      const key = chunk.pack.toString('hex')
      if (!packs.has(key)) packs.set(key, packs.size)
      return { digest: chunk.digest, size: chunk.size, pack: packs.get(key) as number, offset: chunk.offset }
    }),
  }))
  const { encoding, root } = rootOf(blobs.map((blob, index) => ({ digest: blob.digest, size: (files[index] ?? []).reduce((sum, chunk) => sum + chunk.size, 0), chunked: true })))
  const narSize = narSizeOf(root)
  const record = encodeNarRecord({ narSize, root, packs: [...packs.keys()].map((hex) => Buffer.from(hex, 'hex')), directories: [encoding], blobs })
  const path = syntheticPath(seed, 'packed', { algorithm: 'sha256', digest: createHash('sha256').update(record).digest() })
  await cas.putNarRecord(path.narHash, record)
  await putPathInfo(cas, path, narSize, root, references)
  return path
}

/**
 * A path of the old layout: a root directory object, per file a blob manifest and its
 * chunk objects, the closure pack, and a version 1 NAR index entry under the real NAR hash
 * (rendered from those objects). Returns the NAR bytes too, for byte-identical checks, and
 * the keys of every object the path needs.
 */
export async function writeOldLayoutPath(cas: Cas, seed: string, shape: { files: number; chunksPerFile: number; chunkSize: number }, references: readonly SyntheticPath[] = []): Promise<SyntheticPath & { nar: Buffer; objects: string[] }> {
  const objects: string[] = []
  const files: { digest: Digest; size: number; chunked: boolean }[] = []
  const pack: PackRecord[] = []
  for (let file = 0; file < shape.files; file++) {
    const chunks = Array.from({ length: shape.chunksPerFile }, () => randomBytes(shape.chunkSize))
    const refs = chunks.map((bytes) => ({ digest: digestOf(bytes), size: bytes.length }))
    await Promise.all(refs.map((ref, index) => cas.putChunk(ref.digest, chunks[index] as Buffer)))
    const digest = digestOf(Buffer.concat(chunks))
    const manifest = encodeManifest(refs)
    await cas.putManifest(digest, manifest)
    objects.push(...refs.map((ref) => keys.chunk(ref.digest)), keys.manifest(digest))
    pack.push({ kind: 'manifest', digest, bytes: manifest })
    files.push({ digest, size: shape.chunksPerFile * shape.chunkSize, chunked: true })
  }
  const { encoding, root } = rootOf(files)
  const rootDigest = (root as Extract<CasNode, { type: 'directory' }>).digest
  await cas.putDirectory(rootDigest, encoding)
  await cas.putPack(rootDigest, encodePack([{ kind: 'directory', digest: rootDigest, bytes: encoding }, ...pack]))
  objects.push(keys.directory(rootDigest), keys.closurePack(rootDigest))
  const parts: Uint8Array[] = []
  for await (const part of renderNar(cas, layoutNar(root, await loadClosure(cas, root)))) parts.push(part)
  const nar = Buffer.concat(parts)
  const path = syntheticPath(seed, 'old-layout', { algorithm: 'sha256', digest: createHash('sha256').update(nar).digest() })
  await cas.putNarRecord(path.narHash, encodeNarIndexEntry({ narSize: narSizeOf(root), root }))
  await putPathInfo(cas, path, narSizeOf(root), root, references)
  const stem = encodeNixbase32(path.narHash.digest)
  objects.push(keys.narRecord(path.narHash), keys.pathInfo(path.hash), keys.upload(stem, `${stem}.nar.xz`))
  return { ...path, nar, objects }
}

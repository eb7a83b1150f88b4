import { NixcasError } from '../errors.ts'
import { digestHex, digestOf, digestsEqual, type Digest } from '../castore/digest.ts'
import { decodeDirectory, directoryDigest } from '../castore/directory.ts'
import { decodeManifest, type ChunkRef } from '../castore/manifest.ts'
import { decodeNarIndexEntry, decodePathInfo, encodeNarIndexEntry, encodePathInfo, type NarIndexEntry, type PathInfo } from '../castore/path-info.ts'
import type { DirectoryEntry } from '../castore/node.ts'
import { decodePack, type PackRecord } from '../castore/pack.ts'
import { encodeNixbase32 } from '../nix/nixbase32.ts'
import type { NixHash } from '../nix/hash.ts'
import type { ObjectStore } from '../stores/store.ts'

const sharded = (kind: string, id: string): string => `${kind}/${id.slice(0, 2)}/${id}`

/** The key layout: derived from digests and hashes only, sharded two characters deep. */
export const casKeys = {
  chunk: (digest: Digest): string => sharded('chunks', digestHex(digest)),
  manifest: (blob: Digest): string => sharded('blobs', digestHex(blob)),
  directory: (digest: Digest): string => sharded('dirs', digestHex(digest)),
  pack: (root: Digest): string => sharded('packs', digestHex(root)),
  pathInfo: (storePathHash: string): string => sharded('info', storePathHash),
  narIndex: (narHash: NixHash): string => sharded('nar', encodeNixbase32(narHash.digest)),
}

/**
 * Typed views over one composed store: chunks, manifests, directories, closure packs,
 * PathInfo and the narhash index. Content-addressed objects read from a store that is not
 * trusted are checked against their digest, so a corrupted object is never served.
 */
export class Cas {
  readonly verify: boolean

  constructor(readonly store: ObjectStore) {
    this.verify = !store.trusted
  }

  private async required(key: string, what: string, signal?: AbortSignal): Promise<Buffer> {
    const bytes = await this.store.get(key, { signal })
    if (bytes === undefined) throw new NixcasError('MISSING_OBJECT', `${what} ${key} is missing from store "${this.store.name}"`)
    return bytes
  }

  /** A chunk's bytes, checked against its digest (and size, when known). */
  async getChunk(digest: Digest, size?: number, signal?: AbortSignal): Promise<Buffer> {
    const key = casKeys.chunk(digest)
    const bytes = await this.required(key, 'chunk', signal)
    if ((size !== undefined && bytes.length !== size) || (this.verify && !digestsEqual(digestOf(bytes), digest))) {
      throw new NixcasError('CORRUPT_OBJECT', `chunk ${key} from store "${this.store.name}" does not match its digest`)
    }
    return bytes
  }

  async hasChunk(digest: Digest, signal?: AbortSignal): Promise<boolean> {
    return (await this.store.head(casKeys.chunk(digest), { signal })) !== undefined
  }

  putChunk(digest: Digest, bytes: Uint8Array, signal?: AbortSignal): Promise<void> {
    return this.store.put(casKeys.chunk(digest), bytes, { signal })
  }

  async getManifest(blob: Digest, size: number, signal?: AbortSignal): Promise<ChunkRef[]> {
    return decodeManifest(await this.required(casKeys.manifest(blob), 'blob manifest', signal), size)
  }

  putManifest(blob: Digest, encoding: Uint8Array): Promise<void> {
    return this.store.put(casKeys.manifest(blob), encoding)
  }

  /** A directory, always checked against its digest (directories are small). */
  async getDirectory(digest: Digest, signal?: AbortSignal): Promise<DirectoryEntry[]> {
    const key = casKeys.directory(digest)
    const bytes = await this.required(key, 'directory', signal)
    if (!digestsEqual(directoryDigest(bytes), digest)) {
      throw new NixcasError('CORRUPT_OBJECT', `directory ${key} from store "${this.store.name}" does not match its digest`)
    }
    return decodeDirectory(bytes)
  }

  putDirectory(digest: Digest, encoding: Uint8Array): Promise<void> {
    return this.store.put(casKeys.directory(digest), encoding)
  }

  /** The closure pack of a root directory, or undefined when there is none. */
  async getPack(root: Digest, signal?: AbortSignal): Promise<PackRecord[] | undefined> {
    const bytes = await this.store.get(casKeys.pack(root), { signal })
    return bytes && decodePack(bytes)
  }

  putPack(root: Digest, encoding: Uint8Array): Promise<void> {
    return this.store.put(casKeys.pack(root), encoding)
  }

  async getPathInfo(storePathHash: string): Promise<PathInfo | undefined> {
    const bytes = await this.store.get(casKeys.pathInfo(storePathHash))
    return bytes && decodePathInfo(bytes)
  }

  putPathInfo(storePathHash: string, info: PathInfo): Promise<void> {
    return this.store.put(casKeys.pathInfo(storePathHash), encodePathInfo(info))
  }

  async getNarIndex(narHash: NixHash): Promise<NarIndexEntry | undefined> {
    const bytes = await this.store.get(casKeys.narIndex(narHash))
    return bytes && decodeNarIndexEntry(bytes)
  }

  putNarIndex(narHash: NixHash, entry: NarIndexEntry): Promise<void> {
    return this.store.put(casKeys.narIndex(narHash), encodeNarIndexEntry(entry))
  }
}

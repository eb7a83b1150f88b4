import { NixcasError, isNixcasError } from '../errors.ts'
import { digestOf, digestsEqual, type Digest } from '../castore/digest.ts'
import { decodeDirectory, directoryDigest } from '../castore/directory.ts'
import { decodeManifest, type ChunkRef } from '../castore/manifest.ts'
import { decodeNarIndexEntry, decodePathInfo, encodeNarIndexEntry, encodePathInfo, type NarIndexEntry, type PathInfo } from '../castore/path-info.ts'
import type { DirectoryEntry } from '../castore/node.ts'
import { decodePack, type PackRecord } from '../castore/pack.ts'
import type { NixHash } from '../nix/hash.ts'
import type { ObjectStore } from '../stores/store.ts'
import { keys } from './keys.ts'

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

  /** Decodes an object read from the store; a malformed one is CORRUPT_OBJECT naming the store and key. */
  private decoded<T>(key: string, decode: () => T): T {
    try {
      return decode()
    } catch (error) {
      if (!isNixcasError(error, 'CORRUPT_OBJECT') || error.key !== undefined) throw error
      throw new NixcasError('CORRUPT_OBJECT', `${key} in store "${this.store.name}": ${error.message}`, { cause: error, store: this.store.name, key })
    }
  }

  /** A chunk's bytes, checked against its digest (and size, when known). */
  async getChunk(digest: Digest, size?: number, signal?: AbortSignal): Promise<Buffer> {
    const key = keys.chunk(digest)
    const bytes = await this.required(key, 'chunk', signal)
    if ((size !== undefined && bytes.length !== size) || (this.verify && !digestsEqual(digestOf(bytes), digest))) {
      throw new NixcasError('CORRUPT_OBJECT', `chunk ${key} from store "${this.store.name}" does not match its digest`, { store: this.store.name, key })
    }
    return bytes
  }

  async hasChunk(digest: Digest, signal?: AbortSignal): Promise<boolean> {
    return (await this.store.head(keys.chunk(digest), { signal })) !== undefined
  }

  putChunk(digest: Digest, bytes: Uint8Array, signal?: AbortSignal): Promise<void> {
    return this.store.put(keys.chunk(digest), bytes, { signal })
  }

  async getManifest(blob: Digest, size: number, signal?: AbortSignal): Promise<ChunkRef[]> {
    const key = keys.manifest(blob)
    const bytes = await this.required(key, 'blob manifest', signal)
    return this.decoded(key, () => decodeManifest(bytes, size))
  }

  putManifest(blob: Digest, encoding: Uint8Array): Promise<void> {
    return this.store.put(keys.manifest(blob), encoding)
  }

  /** A directory, always checked against its digest (directories are small). */
  async getDirectory(digest: Digest, signal?: AbortSignal): Promise<DirectoryEntry[]> {
    const key = keys.directory(digest)
    const bytes = await this.required(key, 'directory', signal)
    if (!digestsEqual(directoryDigest(bytes), digest)) {
      throw new NixcasError('CORRUPT_OBJECT', `directory ${key} from store "${this.store.name}" does not match its digest`, { store: this.store.name, key })
    }
    return this.decoded(key, () => decodeDirectory(bytes))
  }

  putDirectory(digest: Digest, encoding: Uint8Array): Promise<void> {
    return this.store.put(keys.directory(digest), encoding)
  }

  /** The closure pack of a root directory, or undefined when there is none. */
  async getPack(root: Digest, signal?: AbortSignal): Promise<PackRecord[] | undefined> {
    const key = keys.closurePack(root)
    const bytes = await this.store.get(key, { signal })
    return bytes && this.decoded(key, () => decodePack(bytes))
  }

  putPack(root: Digest, encoding: Uint8Array): Promise<void> {
    return this.store.put(keys.closurePack(root), encoding)
  }

  async getPathInfo(storePathHash: string): Promise<PathInfo | undefined> {
    const key = keys.pathInfo(storePathHash)
    const bytes = await this.store.get(key)
    return bytes && this.decoded(key, () => decodePathInfo(bytes))
  }

  putPathInfo(storePathHash: string, info: PathInfo): Promise<void> {
    return this.store.put(keys.pathInfo(storePathHash), encodePathInfo(info))
  }

  async getNarIndex(narHash: NixHash): Promise<NarIndexEntry | undefined> {
    const bytes = await this.store.get(keys.narIndex(narHash))
    return bytes && decodeNarIndexEntry(bytes)
  }

  putNarIndex(narHash: NixHash, entry: NarIndexEntry): Promise<void> {
    return this.store.put(keys.narIndex(narHash), encodeNarIndexEntry(entry))
  }
}

import { digestHex, type Digest } from '../castore/digest.ts'
import type { NixHash } from '../nix/hash.ts'
import { encodeNixbase32 } from '../nix/nixbase32.ts'

const sharded = (kind: string, id: string): string => `${kind}/${id.slice(0, 2)}/${id}`

/**
 * The key layout: the one place object keys are made. Keys derive only from digests,
 * hashes and names that were validated before they get here, sharded two characters deep
 * so that no directory or listing page grows without bound.
 */
export const keys = {
  chunk: (digest: Digest): string => sharded('chunks', digestHex(digest)),
  manifest: (blob: Digest): string => sharded('blobs', digestHex(blob)),
  directory: (digest: Digest): string => sharded('dirs', digestHex(digest)),
  closurePack: (root: Digest): string => sharded('packs', digestHex(root)),
  pathInfo: (storePathHash: string): string => sharded('info', storePathHash),
  narIndex: (narHash: NixHash): string => sharded('nar', encodeNixbase32(narHash.digest)),
  /** An uploaded NAR file name (`<stem>.nar[.xz|…]`, validated by the caller) → the NAR it became. */
  upload: (stem: string, fileName: string): string => `uploads/${stem.slice(0, 2)}/${fileName}`,
  /** Probed by /health: never written, so the answer is always "absent" from a store that works. */
  healthProbe: 'health/probe',
} as const

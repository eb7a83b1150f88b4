import { Blake3Hasher, blake3 } from '@napi-rs/blake-hash'
import { NixcasError } from '../errors.ts'

/**
 * BLAKE3-256 through a native binding (@napi-rs/blake-hash, prebuilt for each platform
 * on the npm registry): about 4.4 GB/s here against 0.7 GB/s for the wasm build.
 */
export const DIGEST_SIZE = 32

export type Digest = Buffer

export function digestOf(bytes: Uint8Array): Digest {
  return blake3(bytes)
}

/** Incremental BLAKE3 for bytes that arrive in pieces. */
export class DigestStream {
  private readonly hasher = new Blake3Hasher()

  update(bytes: Uint8Array): void {
    this.hasher.update(bytes)
  }

  digest(): Digest {
    return this.hasher.digestBuffer()
  }
}

export function digestHex(digest: Uint8Array): string {
  return Buffer.from(digest.buffer, digest.byteOffset, digest.byteLength).toString('hex')
}

export function parseDigestHex(text: string): Digest {
  if (!/^[0-9a-f]{64}$/.test(text)) throw new NixcasError('BAD_REQUEST', `${JSON.stringify(text.slice(0, 80))} is not a BLAKE3 digest in hex`)
  return Buffer.from(text, 'hex')
}

export function digestsEqual(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0
}

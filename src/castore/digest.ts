import { createRequire } from 'node:module'
import { createBLAKE3, type IHasher } from 'hash-wasm'
import { NixcasError } from '../errors.ts'

/**
 * BLAKE3-256. Measured here: the native binding from @napi-rs/blake-hash 4.4 GB/s, the
 * wasm build from hash-wasm 0.7 GB/s. The native one is an optional dependency (its
 * prebuilt package for linux x64 is on the npm registry); everywhere else, or if it
 * cannot load, the wasm build answers instead with the same digests.
 */
export const DIGEST_SIZE = 32

export type Digest = Buffer

interface NativeHasher {
  update(input: Uint8Array): unknown
  digestBuffer(): Buffer
}
interface NativeBinding {
  blake3(input: Uint8Array): Buffer
  Blake3Hasher: new () => NativeHasher
}

function loadNative(): NativeBinding | undefined {
  if (process.platform !== 'linux' || process.arch !== 'x64' || process.env.NIXCAS_BLAKE3 === 'wasm') return undefined
  try {
    return createRequire(import.meta.url)('@napi-rs/blake-hash-linux-x64-gnu') as NativeBinding
  } catch {
    return undefined
  }
}

const native = loadNative()
// One wasm hasher serves every stream: each keeps its own saved state between updates.
const wasm: IHasher | undefined = native ? undefined : await createBLAKE3()

/** Which implementation is in use, for logs and benchmarks. */
export const BLAKE3_IMPLEMENTATION = native ? 'native' : 'wasm'

export function digestOf(bytes: Uint8Array): Digest {
  if (native) return native.blake3(bytes)
  const hasher = wasm as IHasher
  hasher.init()
  hasher.update(bytes)
  return Buffer.from(hasher.digest('binary'))
}

/** Incremental BLAKE3 for bytes that arrive in pieces. */
export class DigestStream {
  private readonly hasher = native ? new native.Blake3Hasher() : undefined
  private state: Uint8Array | undefined

  update(bytes: Uint8Array): void {
    if (this.hasher) {
      this.hasher.update(bytes)
      return
    }
    const shared = wasm as IHasher
    if (this.state) shared.load(this.state)
    else shared.init()
    shared.update(bytes)
    this.state = shared.save()
  }

  digest(): Digest {
    if (this.hasher) return this.hasher.digestBuffer()
    const shared = wasm as IHasher
    if (this.state) shared.load(this.state)
    else shared.init()
    return Buffer.from(shared.digest('binary'))
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

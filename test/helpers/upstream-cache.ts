import { createHash, randomBytes } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { encode } from '../../src/codec/encode.ts'
import { narSuffix, type CodecMethod } from '../../src/codec/methods.ts'
import { renderNarInfo, type NarInfo } from '../../src/nix/narinfo.ts'
import { signNarInfo } from '../../src/nix/narinfo-signing.ts'
import { encodeNixbase32 } from '../../src/nix/nixbase32.ts'
import type { SecretKey } from '../../src/nix/signing.ts'
import { collect } from './streams.ts'

/** A store path hash nobody has used. */
export const newPathHash = (): string => encodeNixbase32(randomBytes(20)).slice(0, 32)

export interface Published {
  /** The store path hash of the published path. */
  hash: string
  /** The NAR file's size as stored (compressed). */
  fileSize: number
}

/** Makes `root` a binary cache directory: the nix-cache-info Nix expects. */
export async function initCache(root: string): Promise<void> {
  await mkdir(join(root, 'nar'), { recursive: true })
  await writeFile(join(root, 'nix-cache-info'), 'StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n')
}

/**
 * Writes one path into a binary cache directory as `nix copy --to file://` would: the NAR
 * file compressed with `method` (after `tamper`, which makes it another NAR than the
 * narinfo describes), and a narinfo signed by `key` (unsigned without one).
 */
export async function publish(root: string, nar: Buffer, method: CodecMethod, key: SecretKey | undefined, tamper: (nar: Buffer) => Buffer = (bytes) => bytes): Promise<Published> {
  const hash = newPathHash()
  const tampered = tamper(Buffer.from(nar))
  const file = await collect(encode((async function* () {
    yield tampered
  })(), method))
  const fileHash = encodeNixbase32(createHash('sha256').update(file).digest())
  const name = `${fileHash}${narSuffix(method) ?? '.nar'}`
  await writeFile(join(root, 'nar', name), file)
  const narinfo: NarInfo = {
    storePath: `/nix/store/${hash}-upstream-sample`,
    url: `nar/${name}`,
    compression: method,
    narHash: { algorithm: 'sha256', digest: createHash('sha256').update(nar).digest() },
    narSize: nar.length,
    references: [],
    signatures: [],
  }
  await writeFile(join(root, `${hash}.narinfo`), renderNarInfo(key ? signNarInfo(narinfo, [key]) : narinfo))
  return { hash, fileSize: file.length }
}

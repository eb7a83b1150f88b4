import { createHash } from 'node:crypto'
import { dumpPath } from '../../src/fs/dump-path.ts'
import { writeNar } from '../../src/nix/nar-writer.ts'
import { encodeNixbase32 } from '../../src/nix/nixbase32.ts'
import { collect } from './streams.ts'

export interface SampleNar {
  bytes: Buffer
  /** sha256 in nixbase32, the name nixcas serves it under. */
  hash: string
}

export async function narOf(path: string): Promise<SampleNar> {
  const bytes = await collect(writeNar(dumpPath(path)))
  return { bytes, hash: encodeNixbase32(createHash('sha256').update(bytes).digest()) }
}

/** A narinfo for `nar` at a made-up store path, as `nix copy` would upload it. */
export function narinfoFor(nar: SampleNar, storePathHash: string, extra = ''): string {
  return [
    `StorePath: /nix/store/${storePathHash}-sample`,
    `URL: nar/${nar.hash}.nar`,
    'Compression: none',
    `NarHash: sha256:${nar.hash}`,
    `NarSize: ${nar.bytes.length}`,
    'References: ',
    extra,
  ].filter((line) => line !== '').join('\n') + '\n'
}

export const PATH_HASH = 'hsf304jrmqh22x30v2bfvz22ccrmvk1q'
export const OTHER_PATH_HASH = 'wpjqh28ynj0kdpgv9bbmhy126hp7rkxf'

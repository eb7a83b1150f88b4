import { randomBytes } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { encodeNixbase32 } from '../../src/nix/nixbase32.ts'
import { narOf, type SampleNar } from './nar-samples.ts'

/** A made-up store path with real contents: what a test pushes, pins and collects. */
export interface TestPath {
  hash: string
  base: string
  storePath: string
  nar: SampleNar
  references: string[]
}

/** A store path whose tree holds `files` (name → bytes) and a file naming its references. */
export async function makePath(dir: string, name: string, files: Record<string, Uint8Array>, references: readonly TestPath[] = []): Promise<TestPath> {
  const hash = encodeNixbase32(randomBytes(20))
  const root = join(dir, `${hash}-${name}`)
  await mkdir(root, { recursive: true })
  for (const [file, bytes] of Object.entries(files)) await writeFile(join(root, file), bytes)
  await writeFile(join(root, 'references'), references.map((reference) => reference.storePath).join('\n'))
  const base = `${hash}-${name}`
  return { hash, base, storePath: `/nix/store/${base}`, nar: await narOf(root), references: references.map((reference) => reference.base).sort() }
}

export function narinfoOf(path: TestPath): string {
  return [
    `StorePath: ${path.storePath}`,
    `URL: nar/${path.nar.hash}.nar`,
    'Compression: none',
    `NarHash: sha256:${path.nar.hash}`,
    `NarSize: ${path.nar.bytes.length}`,
    `References: ${path.references.join(' ')}`,
  ].join('\n') + '\n'
}

/** Pushes as `nix copy` does: the NAR, then the narinfo. Returns the narinfo PUT's status. */
export async function push(app: FastifyInstance, path: TestPath): Promise<number> {
  const nar = await app.inject({ method: 'PUT', url: `/nar/${path.nar.hash}.nar`, payload: path.nar.bytes })
  if (nar.statusCode !== 201) throw new Error(`NAR PUT of ${path.base}: ${nar.statusCode} ${nar.body}`)
  return (await app.inject({ method: 'PUT', url: `/${path.hash}.narinfo`, payload: narinfoOf(path) })).statusCode
}

/** `absent` (404), `identical` (its NAR renders byte-identical), or what went wrong. */
export async function fetched(app: FastifyInstance, path: TestPath): Promise<string> {
  const narinfo = await app.inject({ url: `/${path.hash}.narinfo` })
  if (narinfo.statusCode === 404) return 'absent'
  if (narinfo.statusCode !== 200) return `narinfo ${narinfo.statusCode}`
  const nar = await app.inject({ url: `/nar/${path.nar.hash}.nar` })
  if (nar.statusCode !== 200) return `NAR ${nar.statusCode}: ${nar.body.slice(0, 200)}`
  return nar.rawPayload.equals(path.nar.bytes) ? 'identical' : 'different bytes'
}

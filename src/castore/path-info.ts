import { NixcasError } from '../errors.ts'
import { formatNixHash, parseNixHash, type NixHash } from '../nix/hash.ts'
import { parseStorePath, parseStorePathBase } from '../nix/store-path.ts'
import { narSizeOf, nodeFromJson, nodeToJson, type CasNode } from './node.ts'

/** What a narinfo needs, plus the root of the store path's tree. */
export interface PathInfo {
  storePath: string
  narHash: NixHash
  narSize: number
  references: string[]
  deriver?: string
  system?: string
  ca?: string
  signatures: string[]
  root: CasNode
}

/** The narhash index: which tree an uploaded NAR became. */
export interface NarIndexEntry {
  narSize: number
  root: CasNode
}

const VERSION = 1

function corrupt(what: string, cause?: unknown): never {
  throw new NixcasError('CORRUPT_OBJECT', `${what} is malformed`, { cause })
}

function parseJson(bytes: Uint8Array, what: string): Record<string, unknown> {
  try {
    const value = JSON.parse(Buffer.from(bytes).toString('utf8')) as unknown
    if (value && typeof value === 'object' && !Array.isArray(value) && (value as { v?: unknown }).v === VERSION) return value as Record<string, unknown>
  } catch (cause) {
    return corrupt(what, cause)
  }
  return corrupt(what)
}

const strings = (value: unknown): value is string[] => Array.isArray(value) && value.every((item) => typeof item === 'string')

export function encodePathInfo(info: PathInfo): Buffer {
  return Buffer.from(
    JSON.stringify({
      v: VERSION,
      storePath: info.storePath,
      narHash: formatNixHash(info.narHash),
      narSize: info.narSize,
      references: info.references,
      deriver: info.deriver,
      system: info.system,
      ca: info.ca,
      signatures: info.signatures,
      root: nodeToJson(info.root),
    }),
  )
}

export function decodePathInfo(bytes: Uint8Array): PathInfo {
  const json = parseJson(bytes, 'path info')
  try {
    const { storePath, narHash, narSize, references, deriver, system, ca, signatures, root } = json
    if (typeof storePath !== 'string' || typeof narHash !== 'string' || typeof narSize !== 'number' || !strings(references) || !strings(signatures)) {
      return corrupt('path info')
    }
    parseStorePath(storePath)
    references.forEach((ref) => parseStorePathBase(ref))
    const info: PathInfo = { storePath, narHash: parseNixHash(narHash, 'sha256'), narSize, references, signatures, root: nodeFromJson(root) }
    if (typeof deriver === 'string') {
      parseStorePathBase(deriver)
      info.deriver = deriver
    }
    if (typeof system === 'string') info.system = system
    if (typeof ca === 'string') info.ca = ca
    if (narSizeOf(info.root) !== narSize) return corrupt('path info (NAR size and tree disagree)')
    return info
  } catch (cause) {
    return corrupt('path info', cause)
  }
}

export function encodeNarIndexEntry(entry: NarIndexEntry): Buffer {
  return Buffer.from(JSON.stringify({ v: VERSION, narSize: entry.narSize, root: nodeToJson(entry.root) }))
}

export function decodeNarIndexEntry(bytes: Uint8Array): NarIndexEntry {
  const json = parseJson(bytes, 'NAR index entry')
  const root = nodeFromJson(json.root)
  if (typeof json.narSize !== 'number' || narSizeOf(root) !== json.narSize) return corrupt('NAR index entry')
  return { narSize: json.narSize, root }
}

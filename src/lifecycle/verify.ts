import { createHash } from 'node:crypto'
import type { Cas } from '../cas/cas.ts'
import { keyId, keys, prefixes } from '../cas/keys.ts'
import { digestHex, digestOf } from '../castore/digest.ts'
import { isNixcasError } from '../errors.ts'
import { formatNixHash, hashesEqual } from '../nix/hash.ts'
import { STORE_PATH_HASH_LENGTH } from '../nix/store-path.ts'
import { loadLayout } from '../render/load.ts'
import { renderNar } from '../render/render.ts'
import type { ObjectStore } from '../stores/store.ts'

export interface Finding {
  /** The object the problem is about. */
  key: string
  problem: string
}

export interface VerifyReport {
  paths: number
  nars: number
  dataPacks: number
  findings: Finding[]
}

/** A failure that says what is wrong with the store (not with this process) becomes a finding. */
function asFinding(key: string, error: unknown): Finding {
  if (isNixcasError(error, 'MISSING_OBJECT') || isNixcasError(error, 'CORRUPT_OBJECT')) return { key: error.key ?? key, problem: error.message }
  throw error
}

/**
 * `nixcas verify`: re-reads everything visible and checks it. Every PathInfo decodes and
 * its references are in the cache (its closure is complete); every NAR a path names is
 * rendered whole from the store (its record, tree and every chunk, each checked as
 * rendering checks it) and must hash to the path's NarHash, which proves every byte; every
 * data pack hashes to its key — every copy of it, given the backends of a composition (`copies`). One NAR is rendered at a time; memory is one pack or one
 * render window. NARs shared by several paths are rendered once (a Set of NAR hashes).
 */
export async function verifyStore(cas: Cas, options: { onFinding?: (finding: Finding) => void; copies?: readonly ObjectStore[] } = {}): Promise<VerifyReport> {
  const report: VerifyReport = { paths: 0, nars: 0, dataPacks: 0, findings: [] }
  const found = (finding: Finding): void => {
    report.findings.push(finding)
    options.onFinding?.(finding)
  }
  const rendered = new Set<string>()
  for await (const object of cas.store.list(prefixes.pathInfos)) {
    report.paths++
    const hash = keyId(object.key)
    let info
    try {
      info = await cas.getPathInfo(hash)
    } catch (error) {
      found(asFinding(object.key, error))
      continue
    }
    if (info === undefined) continue
    for (const reference of info.references) {
      const referenced = reference.slice(0, STORE_PATH_HASH_LENGTH)
      if (referenced !== hash && (await cas.store.head(keys.pathInfo(referenced))) === undefined) found({ key: object.key, problem: `${info.storePath}: its reference ${reference} is not in the cache (incomplete closure)` })
    }
    const narKey = keys.narRecord(info.narHash)
    if (rendered.has(narKey)) continue
    rendered.add(narKey)
    report.nars++
    try {
      const layout = await loadLayout(cas, info.narHash)
      const sha256 = createHash('sha256')
      for await (const bytes of renderNar(cas, layout)) sha256.update(bytes)
      const actual = { algorithm: 'sha256' as const, digest: sha256.digest() }
      if (!hashesEqual(actual, info.narHash)) found({ key: narKey, problem: `${info.storePath}: the NAR renders to ${formatNixHash(actual)}, not its NarHash ${formatNixHash(info.narHash)}` })
    } catch (error) {
      found(asFinding(narKey, error))
    }
  }
  // Every copy: through a cache or a priority store, one good copy would hide a corrupt one.
  const copies = options.copies ?? [cas.store]
  for (const copy of copies) {
    for await (const object of copy.list(prefixes.dataPacks)) {
      report.dataPacks++
      const bytes = await copy.get(object.key)
      const where = copies.length > 1 ? ` (the copy in store "${copy.name}")` : ''
      if (bytes !== undefined && digestHex(digestOf(bytes)) !== keyId(object.key)) found({ key: object.key, problem: `the data pack does not match its digest${where}` })
    }
  }
  return report
}

import type { Cas } from '../cas/cas.ts'
import { keyId, keys, prefixes } from '../cas/keys.ts'
import { NixcasError } from '../errors.ts'
import type { NixHash } from '../nix/hash.ts'
import { STORE_PATH_HASH_LENGTH, parseStorePath } from '../nix/store-path.ts'
import { Pins } from './pins.ts'
import { writeTombstone } from './tombstones.ts'

export interface DeleteResult {
  deleted: string[]
  /** Paths given that were not in the cache. */
  absent: string[]
}

/**
 * `nixcas delete`: removes paths' narinfos (their objects go at the next GC, once the
 * tombstone written here has settled). Unless forced, refuses when a path that stays
 * references one of them, or a pin names one: deleting it would leave a closure incomplete.
 * Finding referrers reads every PathInfo once (one listing, one read per path).
 */
export async function deletePaths(cas: Cas, storePaths: readonly string[], options: { storeDir: string; force?: boolean }): Promise<DeleteResult> {
  const targets = new Map(storePaths.map((path) => [parseStorePath(path, options.storeDir).hash, path]))
  if (!options.force) {
    const holders: string[] = []
    for await (const pin of new Pins(cas.store, options.storeDir).list()) {
      for (const path of pin.paths) if (targets.has(parseStorePath(path, options.storeDir).hash)) holders.push(`pin ${pin.name} → ${path}`)
    }
    for await (const object of cas.store.list(prefixes.pathInfos)) {
      const hash = keyId(object.key)
      if (targets.has(hash)) continue
      const info = await cas.getPathInfo(hash)
      for (const reference of info?.references ?? []) {
        const target = targets.get(reference.slice(0, STORE_PATH_HASH_LENGTH))
        if (target !== undefined) holders.push(`${info?.storePath ?? hash} → ${target}`)
      }
    }
    if (holders.length > 0) throw new NixcasError('CONFLICT', `kept paths depend on what would be deleted (--force to delete anyway):\n  ${holders.join('\n  ')}`)
  }
  const result: DeleteResult = { deleted: [], absent: [] }
  const narHashes: NixHash[] = []
  for (const [hash, path] of targets) {
    const info = await cas.getPathInfo(hash)
    if (info === undefined) result.absent.push(path)
    else {
      result.deleted.push(path)
      narHashes.push(info.narHash)
    }
  }
  await writeTombstone(cas.store, narHashes)
  await cas.store.deleteMany(result.deleted.map((path) => keys.pathInfo(parseStorePath(path, options.storeDir).hash)))
  return result
}

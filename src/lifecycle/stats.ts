import type { Cas } from '../cas/cas.ts'
import { keyId, prefixes } from '../cas/keys.ts'
import { humanBytes } from '../units.ts'
import type { Tally } from './sweep.ts'

export interface StoreStats {
  paths: number
  /** NAR bytes of every path, as Nix would download them uncompressed. */
  logicalBytes: number
  /** Bytes of every object stored. */
  storedBytes: number
  /** Bytes of file contents stored (data packs, and chunks of the old layout). */
  contentBytes: number
  objects: Record<string, Tally>
}

/**
 * `nixcas stats`: one listing of the whole store (objects by kind, the first key segment)
 * and one read per PathInfo (for NAR sizes). Memory: one tally per kind.
 */
export async function storeStats(cas: Cas): Promise<StoreStats> {
  const stats: StoreStats = { paths: 0, logicalBytes: 0, storedBytes: 0, contentBytes: 0, objects: {} }
  for await (const object of cas.store.list('')) {
    const kind = object.key.slice(0, object.key.indexOf('/') === -1 ? undefined : object.key.indexOf('/'))
    const tally = (stats.objects[kind] ??= { objects: 0, bytes: 0 })
    tally.objects++
    tally.bytes += object.size
    stats.storedBytes += object.size
    if (object.key.startsWith(prefixes.dataPacks) || object.key.startsWith(prefixes.chunks)) stats.contentBytes += object.size
    if (object.key.startsWith(prefixes.pathInfos)) {
      const info = await cas.getPathInfo(keyId(object.key)).catch(() => undefined)
      if (info) {
        stats.paths++
        stats.logicalBytes += info.narSize
      }
    }
  }
  return stats
}

export function formatStats(stats: StoreStats): string {
  const ratio = stats.contentBytes > 0 ? (stats.logicalBytes / stats.contentBytes).toFixed(2) : '-'
  return [
    `paths: ${stats.paths}`,
    `logical NAR bytes: ${humanBytes(stats.logicalBytes)} (${stats.logicalBytes})`,
    `stored bytes: ${humanBytes(stats.storedBytes)} (${stats.storedBytes}); file contents ${humanBytes(stats.contentBytes)}; NAR bytes per content byte: ${ratio}`,
    'objects by kind:',
    ...Object.entries(stats.objects).map(([kind, tally]) => `  ${kind.padEnd(14)} ${tally.objects} objects, ${humanBytes(tally.bytes)}`),
  ].join('\n') + '\n'
}

import { randomBytes } from 'node:crypto'
import type { Cas } from '../cas/cas.ts'
import { keys } from '../cas/keys.ts'
import { encodeNixbase32 } from '../nix/nixbase32.ts'
import type { NixHash } from '../nix/hash.ts'
import type { ObjectStore } from '../stores/store.ts'

/**
 * Tombstones: the NAR hashes of narinfos that were deleted, written just before they go.
 * Replicas cache narinfos for a minute and CDNs for `narinfoMaxAge`, so a client may still
 * be handed a deleted narinfo for that long: its NAR must stay fetchable (invariant 7).
 * Garbage collection keeps the NARs a tombstone names (and what they need) until the
 * tombstone is older than the settle time, then deletes the tombstone.
 */
/** What the narinfo cache of a replica holds a narinfo for at most (binary-cache.ts). */
const REPLICA_NARINFO_TTL_MS = 60_000

/** The default settle time: as long as a CDN (`narinfoMaxAge`, seconds) and then a replica may serve a deleted narinfo. */
export const defaultSettle = (narinfoMaxAge: number): number => narinfoMaxAge * 1000 + REPLICA_NARINFO_TTL_MS

export async function writeTombstone(store: ObjectStore, narHashes: readonly NixHash[]): Promise<void> {
  if (narHashes.length === 0) return
  const name = `${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`
  await store.put(keys.tombstone(name), Buffer.from(narHashes.map((hash) => encodeNixbase32(hash.digest)).join('\n')))
}

/** The NAR hashes (nixbase32) of tombstones written since `since` (store clock). */
export async function* tombstonedNars(cas: Cas, since: number): AsyncGenerator<string> {
  for await (const object of cas.store.list(keys.tombstones)) {
    if (object.modified < since) continue
    const bytes = await cas.store.get(object.key)
    if (bytes && bytes.length > 0) yield* bytes.toString('latin1').split('\n')
  }
}

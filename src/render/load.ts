import { NixcasError } from '../errors.ts'
import type { Cas } from '../cas/cas.ts'
import type { NarRecord } from '../castore/nar-record.ts'
import type { NixHash } from '../nix/hash.ts'
import { formatNixHash } from '../nix/hash.ts'
import { loadClosure } from './closure.ts'
import { layoutNar, type Layout, type TreeSource } from './layout.ts'

/** A record's tree: in the record itself, or (stores from before data packs) in objects of its own. */
export async function treeOf(cas: Cas, record: NarRecord, signal?: AbortSignal): Promise<TreeSource> {
  return record.tree ?? (await loadClosure(cas, record.root, signal))
}

/** The layout of the NAR with this hash, read from its record. */
export async function loadLayout(cas: Cas, narHash: NixHash, signal?: AbortSignal): Promise<Layout> {
  const record = await cas.getNarRecord(narHash, signal)
  if (record === undefined) throw new NixcasError('MISSING_OBJECT', `no NAR record for ${formatNixHash(narHash)}`)
  return layoutNar(record.root, await treeOf(cas, record, signal))
}

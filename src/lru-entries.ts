/**
 * lru-cache options for at most `entries` entries in storage that grows with use. With
 * `max`, lru-cache allocates its arrays for every entry up front (about 30 bytes each, so
 * 15 MB for half a million chunks in the dedup index of an idle server); counted through
 * `maxSize` at one per entry, the same bound holds and memory follows what is stored.
 */
export function upToEntries(entries: number): { maxSize: number; sizeCalculation: () => number } {
  return { maxSize: Math.max(1, entries), sizeCalculation: () => 1 }
}

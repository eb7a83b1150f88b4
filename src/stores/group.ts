import type { ListedObject, Locality, ObjectStore, PutOptions, ReadOptions } from './store.ts'

/**
 * What priority and race share: several members that hold the same objects. Deletes
 * reach every member, a listing is their union, and the group is trusted only when every
 * member is. Members are closed by whoever built them.
 */
export abstract class GroupStore implements ObjectStore {
  readonly trusted: boolean
  readonly locality: Locality

  constructor(
    readonly name: string,
    protected readonly stores: readonly ObjectStore[],
  ) {
    this.trusted = stores.every((store) => store.trusted)
    this.locality = stores.every((store) => store.locality === 'local') ? 'local' : 'remote'
  }

  abstract get(key: string, options?: ReadOptions): Promise<Buffer | undefined>
  abstract stream(key: string, options?: ReadOptions): Promise<AsyncIterable<Uint8Array> | undefined>
  abstract head(key: string, options?: { signal?: AbortSignal }): Promise<number | undefined>
  abstract put(key: string, bytes: Uint8Array, options?: PutOptions): Promise<void>

  async delete(key: string): Promise<void> {
    await Promise.all(this.stores.map((store) => store.delete(key)))
  }

  async deleteMany(keys: readonly string[]): Promise<void> {
    await Promise.all(this.stores.map((store) => store.deleteMany(keys)))
  }

  /**
   * Every member's keys, each once (from the first member that lists it), merged in key
   * order from the members' own ordered listings: one object per member is held, however
   * many there are.
   */
  async *list(prefix: string): AsyncGenerator<ListedObject> {
    const listings = this.stores.map((store) => store.list(prefix)[Symbol.asyncIterator]())
    try {
      const heads = await Promise.all(listings.map((listing) => listing.next()))
      for (;;) {
        let first: ListedObject | undefined
        for (const head of heads) if (!head.done && (first === undefined || head.value.key < first.key)) first = head.value
        if (first === undefined) return
        for (const [index, head] of heads.entries()) {
          if (!head.done && head.value.key === first.key) heads[index] = await (listings[index] as AsyncIterator<ListedObject>).next()
        }
        yield first
      }
    } finally {
      await Promise.all(listings.map(async (listing) => {
        await listing.return?.()
      }))
    }
  }

  async close(): Promise<void> {}
}

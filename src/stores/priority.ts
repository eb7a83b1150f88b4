import type { Body, ListedObject, ObjectStore, ReadOptions } from './store.ts'

/** Lists every member's keys once each. */
export async function* listUnion(stores: readonly ObjectStore[], prefix: string): AsyncGenerator<ListedObject> {
  const seen = new Set<string>()
  for (const store of stores) {
    for await (const object of store.list(prefix)) {
      if (seen.has(object.key)) continue
      seen.add(object.key)
      yield object
    }
  }
}

/**
 * Asks its members in order; the first present answer wins. A member that fails is
 * skipped, but if no member has the object, that failure is reported: "absent" is only
 * said when every member said it. Writes go to the first member.
 */
export class PriorityStore implements ObjectStore {
  readonly trusted: boolean

  constructor(
    readonly name: string,
    private readonly stores: readonly ObjectStore[],
  ) {
    this.trusted = stores.every((store) => store.trusted)
  }

  private async first<T>(call: (store: ObjectStore) => Promise<T | undefined>): Promise<T | undefined> {
    let failure: Error | undefined
    for (const store of this.stores) {
      try {
        const answer = await call(store)
        if (answer !== undefined) return answer
      } catch (error) {
        failure ??= error as Error
      }
    }
    if (failure !== undefined) throw failure
    return undefined
  }

  get(key: string, options?: ReadOptions): Promise<Buffer | undefined> {
    return this.first((store) => store.get(key, options))
  }

  stream(key: string, options?: ReadOptions): Promise<AsyncIterable<Uint8Array> | undefined> {
    return this.first((store) => store.stream(key, options))
  }

  head(key: string, options?: { signal?: AbortSignal }): Promise<number | undefined> {
    return this.first((store) => store.head(key, options))
  }

  put(key: string, body: Body, options?: { signal?: AbortSignal }): Promise<void> {
    return (this.stores[0] as ObjectStore).put(key, body, options)
  }

  async delete(key: string): Promise<void> {
    await Promise.all(this.stores.map((store) => store.delete(key)))
  }

  list(prefix: string): AsyncIterable<ListedObject> {
    return listUnion(this.stores, prefix)
  }

  close(): Promise<void> {
    return Promise.resolve()
  }
}

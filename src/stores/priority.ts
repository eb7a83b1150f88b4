import { GroupStore } from './group.ts'
import type { ObjectStore, PutOptions, ReadOptions } from './store.ts'

/**
 * Asks its members in order; the first present answer wins. A member that fails is
 * skipped, but if no member has the object, that failure is reported: "absent" is only
 * said when every member said it. Writes go to the first member.
 */
export class PriorityStore extends GroupStore {
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

  put(key: string, bytes: Uint8Array, options?: PutOptions): Promise<void> {
    return (this.stores[0] as ObjectStore).put(key, bytes, options)
  }
}

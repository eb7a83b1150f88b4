import { GroupStore } from './group.ts'
import { toBuffer, type ObjectStore, type PutOptions, type ReadOptions } from './store.ts'

/** Ends a stream that lost the race, so its connection is released. */
function discard(answer: unknown): void {
  const iterable = answer as AsyncIterable<unknown> | undefined
  if (iterable && typeof iterable === 'object' && Symbol.asyncIterator in iterable) {
    void iterable[Symbol.asyncIterator]().return?.().catch(() => undefined)
  }
}

/**
 * Asks every member at once; the first present answer wins and the others are aborted.
 * "Absent" needs every member to say so; if one failed and none had it, that failure is
 * reported. Writes go to every member (they are replicas).
 */
export class RaceStore extends GroupStore {
  private race<T>(call: (store: ObjectStore, signal: AbortSignal) => Promise<T | undefined>, outer?: AbortSignal): Promise<T | undefined> {
    const controller = new AbortController()
    const abort = (): void => controller.abort(outer?.reason)
    outer?.addEventListener('abort', abort, { once: true })
    return new Promise<T | undefined>((resolve, reject) => {
      let pending = this.stores.length
      let settled = false
      let failure: Error | undefined
      const finish = (): void => {
        if (--pending > 0 || settled) return
        settled = true
        outer?.removeEventListener('abort', abort)
        if (failure !== undefined) reject(failure)
        else resolve(undefined)
      }
      for (const store of this.stores) {
        call(store, controller.signal).then(
          (answer) => {
            if (answer !== undefined && !settled) {
              settled = true
              outer?.removeEventListener('abort', abort)
              controller.abort()
              resolve(answer)
            } else if (answer !== undefined) {
              discard(answer)
            }
            finish()
          },
          (error: unknown) => {
            if (!settled) failure ??= error as Error
            finish()
          },
        )
      }
    })
  }

  get(key: string, options?: ReadOptions): Promise<Buffer | undefined> {
    // Whole bytes, so a slow loser cannot hold a half-read stream.
    return this.race(async (store, signal) => {
      const source = await store.stream(key, { ...options, signal })
      return source && toBuffer(source)
    }, options?.signal)
  }

  stream(key: string, options?: ReadOptions): Promise<AsyncIterable<Uint8Array> | undefined> {
    return this.race((store, signal) => store.stream(key, { ...options, signal }), options?.signal)
  }

  head(key: string, options?: { signal?: AbortSignal }): Promise<number | undefined> {
    return this.race((store, signal) => store.head(key, { signal }), options?.signal)
  }

  async put(key: string, bytes: Uint8Array, options?: PutOptions): Promise<void> {
    // Every replica needs the same bytes.
    await Promise.all(this.stores.map((store) => store.put(key, bytes, options)))
  }
}

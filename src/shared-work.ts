/** Why a signal aborted, as an Error (an AbortSignal's default reason is one). */
const reasonOf = (signal: AbortSignal): Error => (signal.reason instanceof Error ? signal.reason : new Error('aborted', { cause: signal.reason }))

/**
 * Work that concurrent callers share, by key: the first caller starts it, later ones wait on
 * the same result, so a burst of requests for one thing does that thing once. It stops (its
 * signal aborts) only when every caller waiting on it has gone; a caller that goes is
 * answered with its own signal's reason at once. A key is free again as soon as its work
 * ends or is abandoned.
 */
export class SharedWork<K, T> {
  private readonly running = new Map<K, { promise: Promise<T>; controller: AbortController; waiters: number }>()

  /** How many keys have work running (tests, metrics). */
  get size(): number {
    return this.running.size
  }

  run(key: K, work: (signal: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (signal?.aborted) return Promise.reject(reasonOf(signal))
    let flight = this.running.get(key)
    if (flight === undefined) {
      const controller = new AbortController()
      const started = { promise: work(controller.signal), controller, waiters: 0 }
      const ended = (): void => {
        if (this.running.get(key) === started) this.running.delete(key)
      }
      started.promise.then(ended, ended)
      this.running.set(key, (flight = started))
    }
    const shared = flight
    shared.waiters++
    // Without a signal a caller never goes: the work runs to its end.
    if (signal === undefined) return shared.promise
    return new Promise<T>((resolve, reject) => {
      const leave = (): void => {
        if (--shared.waiters === 0) {
          if (this.running.get(key) === shared) this.running.delete(key)
          shared.controller.abort(signal.reason)
        }
        reject(reasonOf(signal))
      }
      signal.addEventListener('abort', leave, { once: true })
      shared.promise.then(
        (value) => {
          signal.removeEventListener('abort', leave)
          resolve(value)
        },
        (error: Error) => {
          signal.removeEventListener('abort', leave)
          reject(error)
        },
      )
    })
  }
}

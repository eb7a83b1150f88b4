import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { keys } from '../cas/keys.ts'
import type { ObjectStore } from '../stores/store.ts'

export interface GcLockOptions {
  /** A bid whose holder has not renewed it for this long is dead (its replica died mid-run) and is removed. */
  ttl: number
  /** How long a bidder waits after its bid before it reads the bids again: longer than a store write takes. */
  settle: number
  /** The time bids are judged by (ms); the store's own clock gives their times. */
  now?: () => number
}

interface Bid {
  id: string
  /** The bid's write time by the store's clock: it orders the bids. */
  placed: number
  /** The latest of the bid and its renewal. */
  alive: number
  keys: string[]
}

async function readBids(store: ObjectStore): Promise<Bid[]> {
  const bids = new Map<string, Bid>()
  const bidOf = (id: string): Bid => {
    let bid = bids.get(id)
    if (!bid) bids.set(id, (bid = { id, placed: Infinity, alive: -Infinity, keys: [] }))
    return bid
  }
  for await (const object of store.list(keys.gcLocks)) {
    const name = object.key.slice(keys.gcLocks.length)
    const renewal = name.endsWith('.renewed')
    const bid = bidOf(renewal ? name.slice(0, -'.renewed'.length) : name)
    bid.keys.push(object.key)
    if (!renewal) bid.placed = object.modified
    bid.alive = Math.max(bid.alive, object.modified)
  }
  return [...bids.values()]
}

/**
 * One scheduled garbage collection at a time across replicas, with only the store to
 * share (no conditional writes are needed). A replica that finds no live bid writes its
 * own, waits `settle`, and reads the bids again: the earliest live bid (by the store's
 * time of its write, then by name) holds the lock and every other bidder withdraws. Every
 * bid written before the winner's second read is seen by it, and one written after is
 * later than it, so two bidders never both win as long as a write lands within `settle`.
 * The holder renews a record beside its bid; a bid not renewed within `ttl` (its replica
 * died mid-run) is removed by the next bidder, so a dead replica blocks GC for `ttl` at most.
 */
export class GcLock {
  private readonly renewal: NodeJS.Timeout

  private constructor(
    private readonly store: ObjectStore,
    private readonly id: string,
    ttl: number,
  ) {
    this.renewal = setInterval(() => void this.renew().catch(() => undefined), ttl / 5)
    this.renewal.unref()
  }

  private renew(): Promise<void> {
    return this.store.put(keys.gcLockRenewal(this.id), Buffer.from('renewed'))
  }

  /** The lock, or undefined when another replica holds it or won the bidding. */
  static async acquire(store: ObjectStore, options: GcLockOptions): Promise<GcLock | undefined> {
    const now = options.now ?? Date.now
    const live = async (): Promise<Bid[]> => {
      const bids = await readBids(store)
      const dead = bids.filter((bid) => bid.alive < now() - options.ttl)
      if (dead.length > 0) await store.deleteMany(dead.flatMap((bid) => bid.keys))
      return bids.filter((bid) => !dead.includes(bid) && bid.placed !== Infinity).sort((a, b) => a.placed - b.placed || (a.id < b.id ? -1 : 1))
    }
    if ((await live()).length > 0) return undefined
    const id = `${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`
    await store.put(keys.gcLock(id), Buffer.from('bid'))
    await sleep(options.settle)
    if ((await live())[0]?.id !== id) {
      await store.deleteMany([keys.gcLock(id)])
      return undefined
    }
    return new GcLock(store, id, options.ttl)
  }

  async release(): Promise<void> {
    clearInterval(this.renewal)
    await this.store.deleteMany([keys.gcLock(this.id), keys.gcLockRenewal(this.id)])
  }
}

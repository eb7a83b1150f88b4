import { randomBytes } from 'node:crypto'

/**
 * Approximate sets for garbage collection's mark phase: exact while small, a Bloom filter
 * beyond, so marking ten million chunks costs about 1.2 bytes each instead of the hundred
 * or so of a Set of key strings. An approximate set never forgets a member; it may claim
 * one it never saw (a false positive). Callers use it only where such a claim is harmless:
 * an object kept that could have gone, collected by a later run. Every set draws its own
 * random seeds, so a key that is a false positive in one run is, at the same rate as any
 * other, not in the next.
 */

/** Growth of a full filter: the next one holds twice as many at half the false-positive rate, so the rates add up to at most the one asked for. */
const GROWTH = 2
const MAX_BITS = 2 ** 32 - 32
const MAX_HASHES = 24

export interface ApproximateSetOptions {
  /** Members expected: sizes the first filter (more are taken, in further filters twice as large each). */
  expected: number
  /** The chance that a key never added tests as a member, once the set is a filter. */
  falsePositiveRate: number
  /** Members kept exactly before the set becomes a filter. */
  exactLimit: number
}

export const APPROXIMATE_SET_DEFAULTS: ApproximateSetOptions = { expected: 10_000_000, falsePositiveRate: 0.01, exactLimit: 100_000 }

/** The last step of MurmurHash3: spreads every input bit over the output. */
function finalMix(value: number): number {
  let h = value
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

function mixIn(h: number, word: number): number {
  let k = Math.imul(word, 0xcc9e2d51)
  k = (k << 15) | (k >>> 17)
  const mixed = h ^ Math.imul(k, 0x1b873593)
  return (Math.imul((mixed << 13) | (mixed >>> 19), 5) + 0xe6546b64) | 0
}

/** A seeded 32-bit hash of a string (MurmurHash3's mixing, a UTF-16 code unit a round). */
export function hashString(text: string, seed: number): number {
  let h = seed
  for (let index = 0; index < text.length; index++) h = mixIn(h, text.charCodeAt(index))
  return finalMix(h ^ text.length)
}

/** A seeded 32-bit hash of a non-negative integer below 2^53. */
export function hashNumber(value: number, seed: number): number {
  return finalMix(mixIn(mixIn(seed, value >>> 0), Math.floor(value / 2 ** 32)) ^ 8)
}

/** A Bloom filter of a fixed capacity, over two hashes combined (Kirsch–Mitzenmacher). */
export class BloomFilter {
  private readonly bits: Uint32Array
  readonly bitCount: number
  readonly hashes: number
  count = 0

  constructor(
    readonly capacity: number,
    falsePositiveRate: number,
  ) {
    const ideal = Math.ceil((-capacity * Math.log(falsePositiveRate)) / Math.LN2 ** 2)
    this.bitCount = Math.min(MAX_BITS, Math.max(64, Math.ceil(ideal / 32) * 32))
    this.hashes = Math.min(MAX_HASHES, Math.max(1, Math.round((this.bitCount / capacity) * Math.LN2)))
    this.bits = new Uint32Array(this.bitCount / 32)
  }

  get bytes(): number {
    return this.bits.byteLength
  }

  /** Sets the key's bits; true when one was clear (the key was certainly new). */
  add(h1: number, h2: number): boolean {
    let added = false
    const step = (h2 | 1) >>> 0
    for (let index = 0; index < this.hashes; index++) {
      const bit = (h1 + index * step) % this.bitCount
      const word = bit >>> 5
      const mask = 1 << (bit & 31)
      const value = this.bits[word] as number
      if ((value & mask) === 0) {
        this.bits[word] = value | mask
        added = true
      }
    }
    if (added) this.count++
    return added
  }

  has(h1: number, h2: number): boolean {
    const step = (h2 | 1) >>> 0
    for (let index = 0; index < this.hashes; index++) {
      const bit = (h1 + index * step) % this.bitCount
      if (((this.bits[bit >>> 5] as number) & (1 << (bit & 31))) === 0) return false
    }
    return true
  }
}

/** What an approximate set reports of itself (logs, benchmarks). */
export interface ApproximateSetStats {
  members: number
  approximate: boolean
  filterBytes: number
}

/**
 * A set that is a Set up to `exactLimit` members and Bloom filters beyond: the first sized
 * for `expected` members at half the false-positive rate, each further one (when the last
 * is full) twice as large at half the rate again, so memory follows the members and the
 * rate never exceeds the one asked for.
 */
export class ApproximateSet<K extends string | number> {
  private exact: Set<K> | undefined = new Set<K>()
  private readonly filters: BloomFilter[] = []
  private readonly seeds: [number, number]
  private members = 0

  constructor(
    private readonly hash: (key: K, seed: number) => number,
    private readonly options: ApproximateSetOptions = APPROXIMATE_SET_DEFAULTS,
  ) {
    const seed = randomBytes(8)
    this.seeds = [seed.readUInt32LE(0), seed.readUInt32LE(4)]
    if (!(options.falsePositiveRate > 0 && options.falsePositiveRate < 1)) throw new RangeError(`false-positive rate ${options.falsePositiveRate} is not between 0 and 1`)
    if (!(options.expected >= 1)) throw new RangeError(`expected count ${options.expected} is not at least 1`)
  }

  /** Adds a key; true when it was not a member (as far as the set can tell: a false positive says false). */
  add(key: K): boolean {
    if (this.exact) {
      if (this.exact.has(key)) return false
      if (this.exact.size < this.options.exactLimit) {
        this.exact.add(key)
        this.members++
        return true
      }
      this.becomeFilter()
    }
    const h1 = this.hash(key, this.seeds[0])
    const h2 = this.hash(key, this.seeds[1])
    if (this.filters.some((filter) => filter.has(h1, h2))) return false
    let last = this.filters.at(-1) as BloomFilter
    if (last.count >= last.capacity) {
      last = new BloomFilter(last.capacity * GROWTH, this.rateOf(this.filters.length))
      this.filters.push(last)
    }
    last.add(h1, h2)
    this.members++
    return true
  }

  has(key: K): boolean {
    if (this.exact) return this.exact.has(key)
    const h1 = this.hash(key, this.seeds[0])
    const h2 = this.hash(key, this.seeds[1])
    return this.filters.some((filter) => filter.has(h1, h2))
  }

  get stats(): ApproximateSetStats {
    return { members: this.members, approximate: this.exact === undefined, filterBytes: this.filters.reduce((sum, filter) => sum + filter.bytes, 0) }
  }

  /** Filter n's rate: half the asked one for the first, halving with each. */
  private rateOf(filter: number): number {
    return this.options.falsePositiveRate / GROWTH ** (filter + 1)
  }

  private becomeFilter(): void {
    const exact = this.exact as Set<K>
    this.exact = undefined
    this.filters.push(new BloomFilter(Math.max(this.options.expected, exact.size * GROWTH), this.rateOf(0)))
    const filter = this.filters[0] as BloomFilter
    for (const key of exact) filter.add(this.hash(key, this.seeds[0]), this.hash(key, this.seeds[1]))
  }
}

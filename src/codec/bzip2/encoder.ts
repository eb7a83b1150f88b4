import { MAX_PIECE } from '../input.ts'
import {
  BLOCK_MAGIC_HI,
  BLOCK_MAGIC_LO,
  CRC_TABLE,
  END_MAGIC_HI,
  END_MAGIC_LO,
  GROUP_SIZE,
  MAX_ENCODE_CODE_LENGTH,
  RUNA,
  RUNB,
  combineCrc,
} from './format.ts'
import { canonicalCodes, codeLengths } from './huffman.ts'

// Module-local copies: hot loops read these, not the imports' live bindings.
const crcTable = CRC_TABLE
const runA = RUNA
const runB = RUNB

/** Writes bits most significant first; at most 24 bits a call. */
class BitWriter {
  private bytes = new Uint8Array(64 * 1024)
  private length = 0
  private buffer = 0
  private count = 0

  write(bits: number, value: number): void {
    this.buffer = (this.buffer << bits) | value
    this.count += bits
    while (this.count >= 8) {
      this.count -= 8
      if (this.length === this.bytes.length) {
        const grown = new Uint8Array(this.bytes.length * 2)
        grown.set(this.bytes)
        this.bytes = grown
      }
      this.bytes[this.length++] = (this.buffer >>> this.count) & 0xff
    }
    this.buffer &= (1 << this.count) - 1
  }

  write32(value: number): void {
    this.write(16, (value >>> 16) & 0xffff)
    this.write(16, value & 0xffff)
  }

  /** Pads the last byte with zero bits. */
  align(): void {
    if (this.count > 0) this.write(8 - this.count, 0)
  }

  /** The whole bytes written since the last take. */
  take(): Uint8Array {
    const taken = this.bytes.slice(0, this.length)
    this.length = 0
    return taken
  }
}

const KEY_SHIFT = 2 ** 20 // above any block index (a block is under 2^20 bytes)

/**
 * Sorted rotations of `block` by prefix doubling that only revisits groups still tied
 * (Larsson–Sadakane): start from buckets of the first two bytes, then sort each tied group
 * by the rank of the rotation k bytes on, doubling k. A rotation's rank is the last index
 * of its group, so groups can be refined in place. Groups still tied when k reaches n are
 * equal rotations (a periodic block): their order does not change the transform.
 */
function burrowsWheeler(block: Uint8Array, n: number): { last: Uint8Array; origin: number } {
  const order = new Int32Array(n)
  const rank = new Int32Array(n)
  const counts = new Int32Array(65537)
  const pair = (index: number): number => ((block[index] as number) << 8) | (block[index + 1 === n ? 0 : index + 1] as number)
  for (let index = 0; index < n; index++) {
    const bucket = pair(index) + 1
    counts[bucket] = (counts[bucket] as number) + 1
  }
  for (let value = 0; value < 65536; value++) counts[value + 1] = (counts[value + 1] as number) + (counts[value] as number)
  for (let index = 0; index < n; index++) {
    const bucket = pair(index)
    const slot = counts[bucket] as number
    counts[bucket] = slot + 1
    order[slot] = index
  }
  for (let index = 0; index < n; index++) rank[index] = (counts[pair(index)] as number) - 1
  let tied: number[] = []
  for (let start = 0; start < n; ) {
    const end = (rank[order[start] as number] as number) + 1
    if (end - start > 1) tied.push(start, end)
    start = end
  }
  const keys = new Float64Array(n)
  for (let k = 2; tied.length > 0 && k < n; k *= 2) {
    const next: number[] = []
    for (let group = 0; group < tied.length; group += 2) {
      const start = tied[group] as number
      const end = tied[group + 1] as number
      const size = end - start
      for (let index = start; index < end; index++) {
        const rotation = order[index] as number
        const ahead = rotation + k < n ? rotation + k : (rotation + k) % n
        keys[index - start] = (rank[ahead] as number) * KEY_SHIFT + rotation
      }
      const sorted = keys.subarray(0, size).sort()
      let runStart = 0
      let runKey = Math.floor((sorted[0] as number) / KEY_SHIFT)
      for (let index = 0; index <= size; index++) {
        const key = index < size ? Math.floor((sorted[index] as number) / KEY_SHIFT) : -1
        if (index < size) order[start + index] = (sorted[index] as number) - key * KEY_SHIFT
        if (key === runKey) continue
        const last = start + index - 1
        for (let member = start + runStart; member <= last; member++) rank[order[member] as number] = last
        if (index - runStart > 1) next.push(start + runStart, start + index)
        runStart = index
        runKey = key
      }
    }
    tied = next
  }
  const last = new Uint8Array(n)
  let origin = 0
  for (let index = 0; index < n; index++) {
    const rotation = order[index] as number
    if (rotation === 0) origin = index
    last[index] = block[rotation === 0 ? n - 1 : rotation - 1] as number
  }
  return { last, origin }
}

/**
 * A bzip2 encoder. Memory: one block of `level` × 100,000 bytes and the sort's arrays
 * (~20 bytes per block byte). Output is decoded by `bzip2 -d`, libbzip2 and libarchive.
 */
export class Bzip2Encoder {
  private readonly writer = new BitWriter()
  private readonly block: Uint8Array
  private readonly capacity: number
  private length = 0
  private crc = -1
  private combinedCrc = 0
  private runByte = -1
  private runLength = 0

  constructor(private readonly level: number) {
    this.block = new Uint8Array(level * 100_000)
    // As bzip2: leave room for the last run to land without a bounds check.
    this.capacity = level * 100_000 - 19
    this.writer.write(24, 0x425a68) // BZh
    this.writer.write(8, 0x30 + level)
  }

  /** Takes input (null to finish) and returns the compressed bytes of every block completed. */
  code(chunk: Uint8Array | null): Uint8Array[] {
    const out: Uint8Array[] = []
    if (chunk) {
      for (let index = 0; index < chunk.length; index++) {
        const byte = chunk[index] as number
        if (byte === this.runByte && this.runLength < 255) {
          this.runLength++
          continue
        }
        if (this.runLength > 0) this.addRun()
        this.runByte = byte
        this.runLength = 1
        if (this.length >= this.capacity) out.push(...this.flushBlock())
      }
      return out
    }
    if (this.runLength > 0) this.addRun()
    if (this.length > 0) out.push(...this.flushBlock())
    this.writer.write(24, END_MAGIC_HI)
    this.writer.write(24, END_MAGIC_LO)
    this.writer.write32(this.combinedCrc)
    this.writer.align()
    out.push(...splitPieces(this.writer.take()))
    return out
  }

  /** The initial run-length stage: 1–3 copies as they are, 4–255 as four and a count. */
  private addRun(): void {
    const byte = this.runByte
    let crc = this.crc
    for (let index = 0; index < this.runLength; index++) crc = (crc << 8) ^ (crcTable[((crc >>> 24) ^ byte) & 0xff] as number)
    this.crc = crc
    const copies = Math.min(this.runLength, 4)
    this.block.fill(byte, this.length, this.length + copies)
    this.length += copies
    if (this.runLength >= 4) this.block[this.length++] = this.runLength - 4
    this.runLength = 0
    this.runByte = -1
  }

  private flushBlock(): Uint8Array[] {
    const blockCrc = ~this.crc >>> 0
    this.combinedCrc = combineCrc(this.combinedCrc, blockCrc)
    this.writeBlock(blockCrc)
    this.length = 0
    this.crc = -1
    return splitPieces(this.writer.take())
  }

  private writeBlock(blockCrc: number): void {
    const n = this.length
    const { last, origin } = burrowsWheeler(this.block, n)
    const writer = this.writer
    writer.write(24, BLOCK_MAGIC_HI)
    writer.write(24, BLOCK_MAGIC_LO)
    writer.write32(blockCrc)
    writer.write(1, 0)
    writer.write(24, origin)

    const inUse = new Uint8Array(256)
    for (let index = 0; index < n; index++) inUse[last[index] as number] = 1
    const toSymbol = new Uint8Array(256)
    let used = 0
    let ranges = 0
    for (let byte = 0; byte < 256; byte++) {
      if (!inUse[byte]) continue
      toSymbol[byte] = used++
      ranges |= 0x8000 >>> (byte >> 4)
    }
    writer.write(16, ranges)
    for (let range = 0; range < 16; range++) {
      if (!(ranges & (0x8000 >>> range))) continue
      let bitmap = 0
      for (let bit = 0; bit < 16; bit++) if (inUse[range * 16 + bit]) bitmap |= 0x8000 >>> bit
      writer.write(16, bitmap)
    }

    const { symbols, count } = moveToFront(last, toSymbol, used)
    const alphabetSize = used + 2
    const { tables, selectors } = chooseTables(symbols, count, alphabetSize)
    writer.write(3, tables.length)
    writer.write(15, selectors.length)
    const order = tables.map((_, index) => index)
    for (const selector of selectors) {
      const position = order.indexOf(selector)
      order.splice(position, 1)
      order.unshift(selector)
      for (let index = 0; index < position; index++) writer.write(1, 1)
      writer.write(1, 0)
    }
    for (const lengths of tables) {
      let current = lengths[0] as number
      writer.write(5, current)
      for (let symbol = 0; symbol < alphabetSize; symbol++) {
        const length = lengths[symbol] as number
        for (; current < length; current++) writer.write(2, 2)
        for (; current > length; current--) writer.write(2, 3)
        writer.write(1, 0)
      }
    }
    const codes = tables.map(canonicalCodes)
    for (let group = 0; group < selectors.length; group++) {
      const table = selectors[group] as number
      const lengths = tables[table] as Uint8Array
      const code = codes[table] as Int32Array
      const end = Math.min(count, (group + 1) * GROUP_SIZE)
      for (let index = group * GROUP_SIZE; index < end; index++) {
        const symbol = symbols[index] as number
        writer.write(lengths[symbol] as number, code[symbol] as number)
      }
    }
  }
}

/** Move-to-front with zero runs written as RUNA/RUNB digits, then the end-of-block symbol. */
function moveToFront(last: Uint8Array, toSymbol: Uint8Array, used: number): { symbols: Uint16Array; count: number } {
  const symbols = new Uint16Array(last.length + 1)
  const order = new Uint8Array(256)
  for (let index = 0; index < used; index++) order[index] = index
  let count = 0
  let zeros = 0
  const flushZeros = (): void => {
    if (zeros === 0) return
    let run = zeros - 1
    for (;;) {
      symbols[count++] = run & 1 ? runB : runA
      if (run < 2) break
      run = (run - 2) >> 1
    }
    zeros = 0
  }
  for (const byte of last) {
    const symbol = toSymbol[byte] as number
    if (order[0] === symbol) {
      zeros++
      continue
    }
    flushZeros()
    let position = 1
    while (order[position] !== symbol) position++
    order.copyWithin(1, 0, position)
    order[0] = symbol
    symbols[count++] = position + 1
  }
  flushZeros()
  symbols[count++] = used + 1
  return { symbols, count }
}

/** Huffman tables for groups of 50 symbols, as bzip2 seeds and refines them (fewer passes). */
function chooseTables(symbols: Uint16Array, count: number, alphabetSize: number): { tables: Uint8Array[]; selectors: Uint8Array } {
  const frequencies = new Int32Array(alphabetSize)
  for (let index = 0; index < count; index++) {
    const symbol = symbols[index] as number
    frequencies[symbol] = (frequencies[symbol] as number) + 1
  }
  const tableCount = count < 200 ? 2 : count < 600 ? 3 : count < 1200 ? 4 : count < 2400 ? 5 : 6
  // Seed: each table cheap on a slice of the alphabet holding an equal share of the symbols.
  let tables: Uint8Array[] = []
  let remaining = count
  let start = 0
  for (let part = tableCount; part > 0; part--) {
    const target = remaining / part
    let end = start - 1
    let sum = 0
    while (sum < target && end < alphabetSize - 1) sum += frequencies[++end] as number
    if (end > start && part !== tableCount && part !== 1 && (tableCount - part) % 2 === 1) sum -= frequencies[end--] as number
    const lengths = new Uint8Array(alphabetSize)
    for (let symbol = 0; symbol < alphabetSize; symbol++) lengths[symbol] = symbol >= start && symbol <= end ? 0 : 15
    tables.unshift(lengths)
    start = end + 1
    remaining -= sum
  }
  const selectors = new Uint8Array(Math.ceil(count / GROUP_SIZE))
  for (let pass = 0; pass < 3; pass++) {
    const groupFrequencies = tables.map(() => new Int32Array(alphabetSize))
    for (let group = 0; group < selectors.length; group++) {
      const end = Math.min(count, (group + 1) * GROUP_SIZE)
      let best = 0
      let bestCost = Infinity
      for (let table = 0; table < tables.length; table++) {
        const lengths = tables[table] as Uint8Array
        let cost = 0
        for (let index = group * GROUP_SIZE; index < end; index++) cost += lengths[symbols[index] as number] as number
        if (cost < bestCost) {
          bestCost = cost
          best = table
        }
      }
      selectors[group] = best
      const chosen = groupFrequencies[best] as Int32Array
      for (let index = group * GROUP_SIZE; index < end; index++) {
        const symbol = symbols[index] as number
        chosen[symbol] = (chosen[symbol] as number) + 1
      }
    }
    tables = groupFrequencies.map((table) => codeLengths(table, alphabetSize, MAX_ENCODE_CODE_LENGTH))
  }
  return { tables, selectors }
}

function splitPieces(bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = []
  for (let offset = 0; offset < bytes.length; offset += MAX_PIECE) out.push(bytes.subarray(offset, offset + MAX_PIECE))
  return out
}

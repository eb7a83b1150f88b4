import { MAX_PIECE, type CodecProgress } from '../input.ts'
import { DONE, NEED_INPUT, type StepDecoder, type StepResult } from '../step.ts'
import {
  BLOCK_MAGIC_HI,
  BLOCK_MAGIC_LO,
  CRC_TABLE,
  END_MAGIC_HI,
  END_MAGIC_LO,
  GROUP_SIZE,
  MAX_CODE_LENGTH,
  MAX_GROUPS,
  MIN_GROUPS,
  RUNA,
  RUNB,
  combineCrc,
} from './format.ts'

/** Thrown inside a parse when the buffered input ends; the parse is retried with more. */
const OUT_OF_INPUT = new Error('out of input')

const MAX_SELECTORS = 32767
const MAX_SYMBOLS = 258

/** One Huffman table in canonical form: codes of each length are consecutive, by symbol. */
interface HuffmanTable {
  minLength: number
  maxLength: number
  /** limit[L]: the largest L-bit code (or -1), firstCode[L]: the smallest. */
  limit: Int32Array
  firstCode: Int32Array
  /** offset[L]: index in `symbols` of the first code of length L. */
  offset: Int32Array
  symbols: Uint16Array
  /** By the next FAST_BITS bits: (symbol << 5) | length for codes that short, else 0. */
  fast: Int32Array
}

const FAST_BITS = 10
const FAST_MASK = (1 << FAST_BITS) - 1

function buildTable(lengths: Uint8Array, count: number): HuffmanTable {
  const perLength = new Int32Array(MAX_CODE_LENGTH + 2)
  let minLength = MAX_CODE_LENGTH
  let maxLength = 0
  for (let symbol = 0; symbol < count; symbol++) {
    const length = lengths[symbol] as number
    perLength[length] = (perLength[length] as number) + 1
    minLength = Math.min(minLength, length)
    maxLength = Math.max(maxLength, length)
  }
  const limit = new Int32Array(MAX_CODE_LENGTH + 2)
  const firstCode = new Int32Array(MAX_CODE_LENGTH + 2)
  const offset = new Int32Array(MAX_CODE_LENGTH + 2)
  let code = 0
  let index = 0
  for (let length = 1; length <= MAX_CODE_LENGTH; length++) {
    firstCode[length] = code
    offset[length] = index
    code += perLength[length] as number
    index += perLength[length] as number
    limit[length] = code - 1
    code <<= 1
  }
  const symbols = new Uint16Array(count)
  const next = Int32Array.from(offset)
  for (let symbol = 0; symbol < count; symbol++) {
    const length = lengths[symbol] as number
    const slot = next[length] as number
    next[length] = slot + 1
    symbols[slot] = symbol
  }
  const fast = new Int32Array(1 << FAST_BITS)
  for (let length = 1; length <= FAST_BITS; length++) {
    for (let index = 0; index < (perLength[length] as number); index++) {
      const code = (firstCode[length] as number) + index
      const symbol = symbols[(offset[length] as number) + index] as number
      // An over-subscribed table (invalid input) can have codes past the table's end.
      const from = code << (FAST_BITS - length)
      const to = Math.min(1 << FAST_BITS, (code + 1) << (FAST_BITS - length))
      if (from < to) fast.fill((symbol << 5) | length, from, to)
    }
  }
  return { minLength, maxLength, limit, firstCode, offset, symbols, fast }
}

/**
 * bzip2 (and concatenated bzip2 streams), decoded in bounded steps. Memory: one block of at
 * most 900,000 symbols (3.6 MB of links), its compressed form (the Huffman stage of a block
 * is at most ~4.5 MB, and is retried with twice the input each time it runs out, so
 * buffered input stays under ~10 MB), and one output piece. A block expands to at most
 * ~46 MB (runs of 4 + 251), handed on in pieces as it is walked.
 */
export class Bzip2Decoder implements StepDecoder {
  // Input: `data` from byte `pos`, with `bitBuffer` holding `bitCount` unread bits before it.
  private data: Uint8Array = new Uint8Array(0)
  private pos = 0
  private bitBuffer = 0
  private bitCount = 0
  private readonly pending: Uint8Array[] = []
  private pendingBytes = 0
  /** Bytes (from the current parse's start) needed before a failed parse is retried. */
  private wanted = 0
  private ended = false
  private sawInput = false

  private state: 'header' | 'block' | 'output' | 'between' | 'done' = 'header'
  private blockSize = 0
  private links = new Uint32Array(0)
  private combinedCrc = 0

  // The walk through one block (inverse BWT and the initial run-length stage).
  private walkPos = 0
  private walkCurrent = 0
  private walkRun = 0
  private walkLeft = 0
  private copies = 0
  private copyByte = 0
  private blockCrc = 0
  private expectedCrc = 0

  private buffer = new Uint8Array(MAX_PIECE)

  // Scratch state of the Huffman stage, kept across blocks.
  private readonly selectors = new Uint8Array(MAX_SELECTORS)
  private readonly symbolToByte = new Uint8Array(256)
  private readonly mtf = new Uint8Array(256)
  private readonly byteCount = new Int32Array(256)

  constructor(private readonly progress: CodecProgress) {}

  write(chunk: Uint8Array): void {
    this.pending.push(chunk)
    this.pendingBytes += chunk.length
    this.sawInput = true
  }

  end(): void {
    this.ended = true
  }

  read(): StepResult {
    for (;;) {
      if (this.state === 'done') return DONE
      if (this.state === 'output') {
        const piece = this.walk()
        if (piece) return piece
        continue
      }
      if (this.available() + this.pendingBytes < this.wanted && !this.ended) return NEED_INPUT
      this.takePending()
      const saved = { pos: this.pos, bitBuffer: this.bitBuffer, bitCount: this.bitCount }
      try {
        this.parse()
        this.wanted = 0
      } catch (error) {
        if (error !== OUT_OF_INPUT) throw error
        if (this.ended) throw new Error(this.sawInput ? 'the input ends inside a stream (truncated)' : 'the input is empty')
        ;({ pos: this.pos, bitBuffer: this.bitBuffer, bitCount: this.bitCount } = saved)
        const available = this.available()
        this.wanted = Math.max(available * 2, available + 16 * 1024)
        return NEED_INPUT
      }
    }
  }

  close(): void {
    this.state = 'done'
    this.links = new Uint32Array(0)
    this.data = new Uint8Array(0)
    this.pending.length = 0
  }

  /** Unread bytes in `data`. */
  private available(): number {
    return this.data.length - this.pos
  }

  /** Appends pending chunks to the unread part of `data`. */
  private takePending(): void {
    if (this.pending.length === 0) return
    const next = new Uint8Array(this.available() + this.pendingBytes)
    next.set(this.data.subarray(this.pos))
    let offset = this.available()
    for (const chunk of this.pending) {
      next.set(chunk, offset)
      offset += chunk.length
    }
    this.data = next
    this.pos = 0
    this.pending.length = 0
    this.pendingBytes = 0
  }

  private bits(count: number): number {
    while (this.bitCount < count) {
      if (this.pos >= this.data.length) throw OUT_OF_INPUT
      this.bitBuffer = ((this.bitBuffer << 8) | (this.data[this.pos++] as number)) >>> 0
      this.bitCount += 8
    }
    this.bitCount -= count
    const value = (this.bitBuffer >>> this.bitCount) & ((1 << count) - 1)
    this.bitBuffer &= (1 << this.bitCount) - 1
    return value
  }

  /** One unit of the stream: a stream header, a block (up to its walk), or a stream end. */
  private parse(): void {
    if (this.state === 'between') {
      // After a stream's end: the input may end here, or another stream may follow.
      if (this.available() === 0 && this.pendingBytes === 0) {
        if (this.ended) {
          this.state = 'done'
          return
        }
        throw OUT_OF_INPUT
      }
      this.state = 'header'
    }
    if (this.state === 'header') {
      if (this.bits(8) !== 0x42 || this.bits(8) !== 0x5a || this.bits(8) !== 0x68) throw new Error('no bzip2 stream header (BZh)')
      const level = this.bits(8) - 0x30
      if (level < 1 || level > 9) throw new Error('bad block size in the stream header')
      this.blockSize = level * 100_000
      this.combinedCrc = 0
      this.state = 'block'
      return
    }
    const high = this.bits(24)
    const low = this.bits(24)
    if (high === END_MAGIC_HI && low === END_MAGIC_LO) {
      const crc = ((this.bits(16) << 16) | this.bits(16)) >>> 0
      if (crc !== this.combinedCrc) throw new Error('the stream CRC does not match')
      this.bitCount = 0 // streams end on a byte boundary
      this.bitBuffer = 0
      this.state = 'between'
      return
    }
    if (high !== BLOCK_MAGIC_HI || low !== BLOCK_MAGIC_LO) throw new Error('bad block magic')
    this.expectedCrc = ((this.bits(16) << 16) | this.bits(16)) >>> 0
    if (this.bits(1)) throw new Error('randomised blocks (bzip2 0.9.0) are not supported')
    this.decodeBlock()
    this.state = 'output'
  }

  /** The Huffman, move-to-front and run stages of one block, into `links`. */
  private decodeBlock(): void {
    const origin = this.bits(24)
    let used = 0
    const ranges = this.bits(16)
    for (let range = 0; range < 16; range++) {
      if (!(ranges & (0x8000 >>> range))) continue
      const bitmap = this.bits(16)
      for (let bit = 0; bit < 16; bit++) if (bitmap & (0x8000 >>> bit)) this.symbolToByte[used++] = range * 16 + bit
    }
    if (used === 0) throw new Error('a block uses no byte values')
    const groups = this.bits(3)
    if (groups < MIN_GROUPS || groups > MAX_GROUPS) throw new Error('bad number of Huffman tables')
    const selectorCount = this.bits(15)
    if (selectorCount === 0) throw new Error('no selectors')
    const order = [0, 1, 2, 3, 4, 5]
    for (let index = 0; index < selectorCount; index++) {
      let position = 0
      while (this.bits(1)) if (++position >= groups) throw new Error('bad selector')
      const group = order[position] as number
      order.splice(position, 1)
      order.unshift(group)
      this.selectors[index] = group
    }
    const symbolCount = used + 2
    const tables: HuffmanTable[] = []
    const lengths = new Uint8Array(MAX_SYMBOLS)
    for (let group = 0; group < groups; group++) {
      let length = this.bits(5)
      for (let symbol = 0; symbol < symbolCount; symbol++) {
        for (;;) {
          if (length < 1 || length > MAX_CODE_LENGTH) throw new Error('bad Huffman code length')
          if (!this.bits(1)) break
          length += this.bits(1) ? -1 : 1
        }
        lengths[symbol] = length
      }
      tables.push(buildTable(lengths, symbolCount))
    }

    const maxCount = this.blockSize
    if (this.links.length < maxCount) this.links = new Uint32Array(maxCount)
    const links = this.links
    const mtf = this.mtf
    const byteCount = this.byteCount
    const symbolToByte = this.symbolToByte
    const selectors = this.selectors
    for (let index = 0; index < 256; index++) mtf[index] = index
    byteCount.fill(0)
    const endOfBlock = symbolCount - 1
    const runA = RUNA
    const runB = RUNB
    // The bit reader, in locals for speed; written back when the block is done.
    const data = this.data
    let pos = this.pos
    let bitBuffer = this.bitBuffer
    let bitCount = this.bitCount
    let count = 0
    let runLength = 0
    let runWeight = 0
    let selector = 0
    let groupLeft = 0
    let table = tables[0] as HuffmanTable
    for (;;) {
      if (groupLeft === 0) {
        if (selector >= selectorCount) throw new Error('ran out of selectors')
        table = tables[selectors[selector++] as number] as HuffmanTable
        groupLeft = GROUP_SIZE
      }
      groupLeft--
      while (bitCount <= 23 && pos < data.length) {
        bitBuffer = ((bitBuffer << 8) | (data[pos++] as number)) >>> 0
        bitCount += 8
      }
      let symbol: number
      const fast = bitCount >= FAST_BITS ? (table.fast[(bitBuffer >>> (bitCount - FAST_BITS)) & FAST_MASK] as number) : 0
      if (fast !== 0) {
        bitCount -= fast & 31
        symbol = fast >>> 5
      } else {
        let length = table.minLength
        for (;;) {
          if (length > table.maxLength) throw new Error('bad Huffman code')
          if (bitCount < length) throw OUT_OF_INPUT
          const code = (bitBuffer >>> (bitCount - length)) & ((1 << length) - 1)
          if (code <= (table.limit[length] as number)) {
            const index = (table.offset[length] as number) + code - (table.firstCode[length] as number)
            if (index < 0 || index >= table.symbols.length) throw new Error('bad Huffman code')
            symbol = table.symbols[index] as number
            bitCount -= length
            break
          }
          length++
        }
      }
      bitBuffer &= (1 << bitCount) - 1
      if (symbol === runA || symbol === runB) {
        if (runWeight === 0) runWeight = 1
        runLength += symbol === runA ? runWeight : 2 * runWeight
        runWeight *= 2
        if (runLength > maxCount) throw new Error('a run overflows the block')
        continue
      }
      if (runWeight !== 0) {
        if (count + runLength > maxCount) throw new Error('a run overflows the block')
        const byte = symbolToByte[mtf[0] as number] as number
        byteCount[byte] = (byteCount[byte] as number) + runLength
        links.fill(byte, count, count + runLength)
        count += runLength
        runLength = 0
        runWeight = 0
      }
      if (symbol === endOfBlock) break
      if (count >= maxCount) throw new Error('the block is larger than its stream header allows')
      let position = symbol - 1
      const value = mtf[position] as number
      for (; position > 0; position--) mtf[position] = mtf[position - 1] as number
      mtf[0] = value
      const byte = symbolToByte[value] as number
      byteCount[byte] = (byteCount[byte] as number) + 1
      links[count++] = byte
    }
    this.pos = pos
    this.bitBuffer = bitBuffer
    this.bitCount = bitCount
    if (origin >= count) throw new Error('the block origin is out of range')

    // Inverse Burrows–Wheeler: each entry gets the index of the next one in its upper bits.
    let sum = 0
    for (let byte = 0; byte < 256; byte++) {
      const next = sum + (byteCount[byte] as number)
      byteCount[byte] = sum
      sum = next
    }
    for (let index = 0; index < count; index++) {
      const byte = (links[index] as number) & 0xff
      const target = byteCount[byte] as number
      links[target] = ((links[target] as number) | (index << 8)) >>> 0
      byteCount[byte] = target + 1
    }
    const first = links[origin] as number
    this.walkCurrent = first & 0xff
    this.walkPos = first >>> 8
    this.walkRun = -1
    this.walkLeft = count
    this.copies = 0
    this.blockCrc = -1
  }

  /** Walks the current block into one output piece; undefined when the block ended empty-handed. */
  private walk(): Uint8Array | undefined {
    const out = this.buffer
    const links = this.links
    let filled = 0
    let crc = this.blockCrc
    const table = CRC_TABLE
    const capacity = out.length
    let { walkPos: pos, walkCurrent: current, walkRun: run, walkLeft: left, copies, copyByte } = this
    while (filled < capacity) {
      if (copies > 0) {
        const count = Math.min(copies, capacity - filled)
        out.fill(copyByte, filled, filled + count)
        for (let index = 0; index < count; index++) crc = (crc << 8) ^ (table[((crc >>> 24) ^ copyByte) & 0xff] as number)
        filled += count
        copies -= count
        continue
      }
      if (left === 0) break
      left--
      const previous = current
      const entry = links[pos] as number
      current = entry & 0xff
      pos = entry >>> 8
      if (run++ === 3) {
        // The fifth byte of a run is a count of further copies of the fourth.
        copies = current
        copyByte = previous
        current = -1
      } else {
        out[filled++] = current
        crc = (crc << 8) ^ (table[((crc >>> 24) ^ current) & 0xff] as number)
      }
      if (current !== previous) run = 0
    }
    Object.assign(this, { walkPos: pos, walkCurrent: current, walkRun: run, walkLeft: left, copies, copyByte, blockCrc: crc })
    if (left === 0 && copies === 0) {
      const blockCrc = ~crc >>> 0
      if (blockCrc !== this.expectedCrc) throw new Error('a block CRC does not match')
      this.combinedCrc = combineCrc(this.combinedCrc, blockCrc)
      this.state = 'block'
    }
    if (filled === 0) return undefined
    this.progress.outputBytes += filled
    if (filled < MAX_PIECE / 4) return out.slice(0, filled)
    this.buffer = new Uint8Array(MAX_PIECE)
    return out.subarray(0, filled)
  }
}

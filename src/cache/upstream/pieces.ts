import { NixcasError } from '../../errors.ts'

/** Bytes of a block small pieces are copied into, unless the holder wants less. */
const BLOCK = 64 * 1024

/**
 * The bytes of one download from offset `start` to `end`, in pieces, read back by offset.
 * A piece is held as given (the caller gives it up), or a copy of it when `copies` is set
 * (the caller keeps it); either way a small piece (under a quarter of a block) is copied
 * into shared blocks (64 KiB unless the holder asks for less), so an upstream that trickles
 * its bytes (a piece per TCP segment, or per byte) costs an object per block, not one per
 * piece, and the bytes held stay the bound on memory. Bytes once appended never change: a
 * view handed to a reader stays valid.
 */
export class Pieces {
  /** NAR offset of the first byte held. */
  start = 0
  /** NAR offset after the last byte held. */
  end = 0
  private pieces: Uint8Array[] = []
  /** Each piece's NAR offset. */
  private offsets: number[] = []
  /** The block small pieces are copied into, while the last piece is a view of it that may grow. */
  private block: Buffer | undefined
  private blockUsed = 0

  /** Pieces smaller than this are copied into the block. */
  private readonly small: number

  constructor(
    private readonly copies: boolean,
    private readonly blockBytes = BLOCK,
  ) {
    this.small = Math.floor(blockBytes / 4)
  }

  /** Pieces held. */
  get count(): number {
    return this.pieces.length
  }

  append(piece: Uint8Array): void {
    if (piece.length === 0) return
    if (piece.length >= this.small) {
      this.seal()
      this.push(this.copies ? new Uint8Array(piece) : piece)
      return
    }
    if (this.block === undefined || this.blockUsed + piece.length > this.block.length) {
      this.block = Buffer.allocUnsafe(this.blockBytes)
      this.blockUsed = 0
      this.push(this.block.subarray(0, 0))
    }
    const from = this.blockUsed
    this.block.set(piece, from)
    this.blockUsed += piece.length
    const last = this.pieces.length - 1
    const view = this.pieces[last] as Uint8Array
    this.pieces[last] = this.block.subarray(from - view.length, this.blockUsed)
    this.end += piece.length
  }

  /** No later piece is copied into the current block: the pieces held now are final. */
  seal(): void {
    this.block = undefined
  }

  /** Pieces from the `index`th on, as held (after a seal, they stay as they are). */
  from(index: number): Uint8Array[] {
    return this.pieces.slice(index)
  }

  /** Forgets the first `count` pieces. */
  dropFirst(count: number): void {
    if (count >= this.pieces.length) this.seal()
    const dropped = this.pieces.splice(0, count)
    this.offsets.splice(0, count)
    for (const piece of dropped) this.start += piece.length
  }

  /** The first piece's length (undefined when nothing is held). */
  get firstLength(): number | undefined {
    return this.pieces[0]?.length
  }

  /** Up to `length` bytes from `offset`, a view of the piece holding it. */
  read(offset: number, length: number): Uint8Array {
    // The last piece that starts at or before `offset`.
    let low = 0
    for (let high = this.offsets.length - 1; low < high; ) {
      const middle = (low + high + 1) >> 1
      if ((this.offsets[middle] ?? 0) <= offset) low = middle
      else high = middle - 1
    }
    const piece = this.pieces[low]
    const at = offset - (this.offsets[low] ?? 0)
    if (piece === undefined || at < 0 || at >= piece.length) throw new NixcasError('INTERNAL', `offset ${offset} is not held (${this.start}-${this.end})`)
    return piece.subarray(at, Math.min(piece.length, at + length))
  }

  private push(piece: Uint8Array): void {
    this.pieces.push(piece)
    this.offsets.push(this.end)
    this.end += piece.length
  }
}

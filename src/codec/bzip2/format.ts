/** Constants and the checksum shared by the bzip2 decoder and encoder. */

/** π's first digits: the 48-bit magic that starts every block. */
export const BLOCK_MAGIC_HI = 0x314159
export const BLOCK_MAGIC_LO = 0x265359
/** √π's first digits: the 48-bit magic that ends a stream. */
export const END_MAGIC_HI = 0x177245
export const END_MAGIC_LO = 0x385090

export const GROUP_SIZE = 50
export const MAX_GROUPS = 6
export const MIN_GROUPS = 2
/** Longest Huffman code a decoder accepts; encoders stay at 17, as bzip2 does. */
export const MAX_CODE_LENGTH = 20
export const MAX_ENCODE_CODE_LENGTH = 17
export const RUNA = 0
export const RUNB = 1

/** bzip2's CRC-32: polynomial 0x04c11db7, most significant bit first. */
export const CRC_TABLE: Int32Array = (() => {
  const table = new Int32Array(256)
  for (let index = 0; index < 256; index++) {
    let crc = index << 24
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x80000000 ? (crc << 1) ^ 0x04c11db7 : crc << 1
    table[index] = crc
  }
  return table
})()

/** Folds a finished block's CRC into the stream's combined CRC. */
export function combineCrc(combined: number, blockCrc: number): number {
  return (((combined << 1) | (combined >>> 31)) ^ blockCrc) >>> 0
}

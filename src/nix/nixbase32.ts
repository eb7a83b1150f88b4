import { NixcasError } from '../errors.ts'

/** Nix's base-32 alphabet: no e, o, u or t, so no words appear in hashes. */
export const NIXBASE32_ALPHABET = '0123456789abcdfghijklmnpqrsvwxyz'

const digitOf = new Int8Array(128).fill(-1)
for (let i = 0; i < NIXBASE32_ALPHABET.length; i++) digitOf[NIXBASE32_ALPHABET.charCodeAt(i)] = i

export function nixbase32Length(byteLength: number): number {
  return Math.ceil((byteLength * 8) / 5)
}

/** Nix's bit order: the last character holds the lowest five bits of the first byte. */
export function encodeNixbase32(bytes: Uint8Array): string {
  const length = nixbase32Length(bytes.length)
  let out = ''
  for (let n = length - 1; n >= 0; n--) {
    const bit = n * 5
    const i = bit >> 3
    const j = bit & 7
    const low = (bytes[i] ?? 0) >> j
    const high = i + 1 < bytes.length ? (bytes[i + 1] ?? 0) << (8 - j) : 0
    out += NIXBASE32_ALPHABET[(low | high) & 0x1f]
  }
  return out
}

export function isNixbase32(text: string): boolean {
  for (let k = 0; k < text.length; k++) {
    const code = text.charCodeAt(k)
    if (code >= 128 || digitOf[code] === -1) return false
  }
  return true
}

/** Decodes a string that must encode exactly `byteLength` bytes. */
export function decodeNixbase32(text: string, byteLength: number): Uint8Array {
  if (text.length !== nixbase32Length(byteLength)) {
    throw new NixcasError(
      'BAD_BASE32',
      `nixbase32 string of ${byteLength} bytes must have ${nixbase32Length(byteLength)} characters, got ${text.length}`,
    )
  }
  const bytes = new Uint8Array(byteLength)
  for (let k = 0; k < text.length; k++) {
    const code = text.charCodeAt(k)
    const digit = code < 128 ? (digitOf[code] ?? -1) : -1
    if (digit < 0) {
      throw new NixcasError('BAD_BASE32', `invalid nixbase32 character ${JSON.stringify(text[k])} at position ${k}`)
    }
    const bit = (text.length - 1 - k) * 5
    const i = bit >> 3
    const j = bit & 7
    bytes[i] = (bytes[i] ?? 0) | ((digit << j) & 0xff)
    const carry = digit >> (8 - j)
    if (i + 1 < byteLength) {
      bytes[i + 1] = (bytes[i + 1] ?? 0) | carry
    } else if (carry !== 0) {
      throw new NixcasError('BAD_BASE32', `nixbase32 string ${JSON.stringify(text)} has bits beyond ${byteLength} bytes`)
    }
  }
  return bytes
}

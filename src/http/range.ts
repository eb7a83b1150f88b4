/**
 * A single `Range: bytes=…` request against a body of `size` bytes: the range (end
 * exclusive), 'unsatisfiable' (answer 416), or undefined (no usable Range: send it all).
 * Several ranges are answered with the whole body, as HTTP allows.
 */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  if (header === undefined) return undefined
  const match = /^bytes=\s*(\d*)\s*-\s*(\d*)\s*$/.exec(header)
  if (!match) return undefined
  const [, first = '', last = ''] = match
  if (first === '' && last === '') return undefined
  if (first === '') {
    const suffix = Number(last)
    if (suffix === 0 || size === 0) return 'unsatisfiable'
    return { start: Math.max(0, size - suffix), end: size }
  }
  const start = Number(first)
  const end = last === '' ? size : Math.min(size, Number(last) + 1)
  if (!Number.isSafeInteger(start) || start >= size) return 'unsatisfiable'
  if (last !== '' && Number(last) < start) return undefined
  return { start, end }
}

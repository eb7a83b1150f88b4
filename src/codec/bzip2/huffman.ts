/**
 * Code lengths for the bzip2 encoder, made as bzip2 makes them: every symbol gets a code
 * (an unused one counts as frequency 1), and when a code would be longer than `maxLength`
 * the frequencies are flattened and the code rebuilt.
 */
export function codeLengths(frequencies: ArrayLike<number>, alphabetSize: number, maxLength: number): Uint8Array {
  const weights = new Float64Array(alphabetSize)
  for (let symbol = 0; symbol < alphabetSize; symbol++) weights[symbol] = Math.max(1, frequencies[symbol] ?? 0)
  for (;;) {
    const lengths = huffmanLengths(weights, alphabetSize)
    let longest = 0
    for (const length of lengths) longest = Math.max(longest, length)
    if (longest <= maxLength) return lengths
    for (let symbol = 0; symbol < alphabetSize; symbol++) weights[symbol] = 1 + Math.floor((weights[symbol] as number) / 2)
  }
}

/** Plain Huffman code lengths by repeatedly joining the two lightest nodes. */
function huffmanLengths(weights: Float64Array, count: number): Uint8Array {
  const lengths = new Uint8Array(count)
  if (count === 1) {
    lengths[0] = 1
    return lengths
  }
  const nodeWeight = new Float64Array(2 * count)
  const parent = new Int32Array(2 * count).fill(-1)
  const heap: number[] = []
  const less = (a: number, b: number): boolean => (nodeWeight[a] as number) < (nodeWeight[b] as number) || (nodeWeight[a] === nodeWeight[b] && a < b)
  const push = (node: number): void => {
    heap.push(node)
    let index = heap.length - 1
    while (index > 0) {
      const up = (index - 1) >> 1
      if (!less(heap[index] as number, heap[up] as number)) break
      ;[heap[index], heap[up]] = [heap[up] as number, heap[index] as number]
      index = up
    }
  }
  const pop = (): number => {
    const top = heap[0] as number
    const last = heap.pop() as number
    if (heap.length > 0) {
      heap[0] = last
      let index = 0
      for (;;) {
        const left = 2 * index + 1
        const right = left + 1
        let smallest = index
        if (left < heap.length && less(heap[left] as number, heap[smallest] as number)) smallest = left
        if (right < heap.length && less(heap[right] as number, heap[smallest] as number)) smallest = right
        if (smallest === index) break
        ;[heap[index], heap[smallest]] = [heap[smallest] as number, heap[index] as number]
        index = smallest
      }
    }
    return top
  }
  for (let symbol = 0; symbol < count; symbol++) {
    nodeWeight[symbol] = weights[symbol] as number
    push(symbol)
  }
  let next = count
  while (heap.length > 1) {
    const a = pop()
    const b = pop()
    nodeWeight[next] = (nodeWeight[a] as number) + (nodeWeight[b] as number)
    parent[a] = next
    parent[b] = next
    push(next++)
  }
  for (let symbol = 0; symbol < count; symbol++) {
    let depth = 0
    for (let node = symbol; parent[node] !== -1; node = parent[node] as number) depth++
    lengths[symbol] = depth
  }
  return lengths
}

/** Canonical codes for lengths, as bzip2 assigns them (by length, then by symbol). */
export function canonicalCodes(lengths: Uint8Array): Int32Array {
  const codes = new Int32Array(lengths.length)
  let code = 0
  for (let length = 1; length <= 20; length++) {
    for (let symbol = 0; symbol < lengths.length; symbol++) if (lengths[symbol] === length) codes[symbol] = code++
    code <<= 1
  }
  return codes
}

/** Gathers an async iterable of chunks into one buffer; for small test data only. */
export async function collect(chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = []
  for await (const chunk of chunks) parts.push(chunk)
  return Buffer.concat(parts)
}

export async function collectAll<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const item of items) out.push(item)
  return out
}

/** Cuts a buffer into pieces of the given sizes (cycled), to exercise readers at every boundary. */
export function* slices(bytes: Uint8Array, sizes: readonly number[]): Generator<Uint8Array> {
  let offset = 0
  let index = 0
  while (offset < bytes.length) {
    const size = Math.max(1, sizes[index++ % sizes.length] ?? 1)
    yield bytes.subarray(offset, offset + size)
    offset += size
  }
}

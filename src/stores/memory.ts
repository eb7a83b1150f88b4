import { checkKey, checkPrefix, clipRange, once, toBuffer, type Body, type ListedObject, type ObjectStore, type ReadOptions } from './store.ts'

/** Objects in a Map: for tests, and as the near side of small caches. */
export class MemoryStore implements ObjectStore {
  readonly trusted = true
  private readonly objects = new Map<string, Buffer>()

  constructor(readonly name: string) {}

  async get(key: string, options?: ReadOptions): Promise<Buffer | undefined> {
    checkKey(this.name, key)
    const object = this.objects.get(key)
    if (object === undefined) return undefined
    const { start, end } = clipRange(object.length, options?.range)
    return object.subarray(start, end)
  }

  async stream(key: string, options?: ReadOptions): Promise<AsyncIterable<Uint8Array> | undefined> {
    const bytes = await this.get(key, options)
    return bytes && once(bytes)
  }

  async head(key: string): Promise<number | undefined> {
    checkKey(this.name, key)
    return this.objects.get(key)?.length
  }

  async put(key: string, body: Body): Promise<void> {
    checkKey(this.name, key)
    // Copy, so a caller reusing its buffer cannot change what was stored.
    this.objects.set(key, Buffer.from(await toBuffer(body)))
  }

  async delete(key: string): Promise<void> {
    checkKey(this.name, key)
    this.objects.delete(key)
  }

  async *list(prefix: string): AsyncGenerator<ListedObject> {
    checkPrefix(this.name, prefix)
    const keys = [...this.objects.keys()].filter((key) => key.startsWith(prefix)).sort()
    for (const key of keys) {
      const object = this.objects.get(key)
      if (object) yield { key, size: object.length }
    }
  }

  async close(): Promise<void> {}
}

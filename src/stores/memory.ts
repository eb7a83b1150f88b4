import { checkKey, checkPrefix, clipRange, deleteEach, once, type ListedObject, type ObjectStore, type ReadOptions } from './store.ts'

interface Stored {
  bytes: Buffer
  modified: number
}

/** Objects in a Map: for tests, and as the near side of small caches. */
export class MemoryStore implements ObjectStore {
  readonly trusted = true
  readonly locality = 'local'
  private readonly objects = new Map<string, Stored>()

  constructor(readonly name: string) {}

  async get(key: string, options?: ReadOptions): Promise<Buffer | undefined> {
    checkKey(this.name, key)
    const object = this.objects.get(key)?.bytes
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
    return this.objects.get(key)?.bytes.length
  }

  async put(key: string, bytes: Uint8Array): Promise<void> {
    checkKey(this.name, key)
    // Copy, so a caller reusing its buffer cannot change what was stored.
    this.objects.set(key, { bytes: Buffer.from(bytes), modified: Date.now() })
  }

  async delete(key: string): Promise<void> {
    checkKey(this.name, key)
    this.objects.delete(key)
  }

  deleteMany(keys: readonly string[]): Promise<void> {
    return deleteEach(this, keys)
  }

  async *list(prefix: string): AsyncGenerator<ListedObject> {
    checkPrefix(this.name, prefix)
    const keys = [...this.objects.keys()].filter((key) => key.startsWith(prefix)).sort()
    for (const key of keys) {
      const object = this.objects.get(key)
      if (object) yield { key, size: object.bytes.length, modified: object.modified }
    }
  }

  async close(): Promise<void> {}
}

import { NixcasError } from '../errors.ts'
import { keys } from '../cas/keys.ts'
import { parseStorePath, type StorePath } from '../nix/store-path.ts'
import type { ObjectStore } from '../stores/store.ts'

/**
 * Named pins (a release, a CI branch): store paths whose whole closures garbage collection
 * never collects. Kept in the store itself (`pins/<name>`), so every replica and every GC
 * run sees the same ones. A pin's paths need not be in the cache yet: pinning first and
 * pushing later keeps them from the moment they arrive.
 */
export interface Pin {
  name: string
  /** Full store paths, as given. */
  paths: string[]
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/

function checkName(name: string): void {
  if (!NAME.test(name)) throw new NixcasError('BAD_REQUEST', `pin name ${JSON.stringify(name.slice(0, 140))} is not 1 to 128 of [A-Za-z0-9._+-], starting with a letter or digit`)
}

function encodePin(pin: Pin): Buffer {
  return Buffer.from(JSON.stringify({ v: 1, name: pin.name, paths: pin.paths }))
}

function decodePin(bytes: Uint8Array, key: string): Pin {
  try {
    const value = JSON.parse(Buffer.from(bytes).toString('utf8')) as { v?: unknown; name?: unknown; paths?: unknown }
    if (value.v === 1 && typeof value.name === 'string' && Array.isArray(value.paths) && value.paths.every((path) => typeof path === 'string')) {
      return { name: value.name, paths: value.paths }
    }
  } catch (cause) {
    throw new NixcasError('CORRUPT_OBJECT', `pin record ${key} is malformed`, { cause, key })
  }
  throw new NixcasError('CORRUPT_OBJECT', `pin record ${key} is malformed`, { key })
}

export class Pins {
  constructor(
    private readonly store: ObjectStore,
    private readonly storeDir: string,
  ) {}

  /** Adds paths to a pin (creating it); paths are checked to be store paths of this store directory. */
  async add(name: string, paths: readonly string[]): Promise<Pin> {
    checkName(name)
    for (const path of paths) parseStorePath(path, this.storeDir)
    const existing = await this.get(name)
    const pin = { name, paths: [...new Set([...(existing?.paths ?? []), ...paths])].sort() }
    await this.store.put(keys.pin(name), encodePin(pin))
    return pin
  }

  /** Sets a pin's paths (creating it, replacing what it held). */
  async set(name: string, paths: readonly string[]): Promise<Pin> {
    checkName(name)
    for (const path of paths) parseStorePath(path, this.storeDir)
    const pin = { name, paths: [...new Set(paths)].sort() }
    await this.store.put(keys.pin(name), encodePin(pin))
    return pin
  }

  /** Removes a pin; false when there was none. */
  async remove(name: string): Promise<boolean> {
    checkName(name)
    if ((await this.store.head(keys.pin(name))) === undefined) return false
    await this.store.delete(keys.pin(name))
    return true
  }

  async get(name: string): Promise<Pin | undefined> {
    checkName(name)
    const bytes = await this.store.get(keys.pin(name))
    return bytes && decodePin(bytes, keys.pin(name))
  }

  async *list(): AsyncGenerator<Pin> {
    for await (const object of this.store.list(keys.pins)) {
      const bytes = await this.store.get(object.key)
      if (bytes) yield decodePin(bytes, object.key)
    }
  }

  /** Every pinned store path, parsed. */
  async *pinnedPaths(): AsyncGenerator<StorePath> {
    for await (const pin of this.list()) for (const path of pin.paths) yield parseStorePath(path, this.storeDir)
  }
}

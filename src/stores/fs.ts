import { randomUUID } from 'node:crypto'
import { readFile, type Dirent } from 'node:fs'
import { promisify } from 'node:util'
import { mkdir, open, readdir, rename, rm, rmdir, stat, unlink } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { Readable } from 'node:stream'
import {
  StoreError,
  checkKey,
  checkPrefix,
  clipRange,
  deleteEach,
  type ListedObject,
  type ObjectStore,
  type PutOptions,
  type ReadOptions,
} from './store.ts'
import { OpenFiles } from './fs-open-files.ts'

/** Temp files live here until renamed into place; no key can name it (keys never start with a dot). */
const TEMP_DIR = '.tmp'
/** Temp files older than this at start-up were left by a crash. */
const STALE_TEMP_MS = 60 * 60 * 1000
const TRANSIENT_ERRNO = new Set(['EIO', 'EMFILE', 'ENFILE', 'EAGAIN', 'EBUSY', 'EINTR', 'ETIMEDOUT'])

const readWhole = promisify(readFile)

const errnoOf = (error: unknown): string | undefined => (error as NodeJS.ErrnoException | undefined)?.code
const isAbsent = (error: unknown): boolean => {
  const code = errnoOf(error)
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR'
}

export interface FsStoreOptions {
  path: string
  /** fsync each object before it becomes visible (default true). */
  fsync?: boolean
}

/**
 * The embedded default: one file per key under a root directory. Keys map 1:1 to
 * relative paths (the key layout shards them into directories), are validated so that
 * none leaves the root, and become visible only by an atomic rename of a complete,
 * fsynced temp file.
 */
export class FsStore implements ObjectStore {
  readonly trusted = true
  readonly locality = 'local'
  readonly root: string
  private readonly fsync: boolean
  private preparing: Promise<void> | undefined
  /** Directories known to exist: most puts land in an existing shard, so skip the mkdir. */
  private readonly madeDirectories = new Set<string>()
  /** Descriptors of immutable objects read by range (data packs), kept open between reads. */
  private readonly openFiles = new OpenFiles()

  constructor(
    readonly name: string,
    options: FsStoreOptions,
  ) {
    this.root = resolve(options.path)
    this.fsync = options.fsync ?? true
  }

  /** Set up on first use, so that building a configuration touches no disk. */
  private get ready(): Promise<void> {
    this.preparing ??= this.prepare()
    return this.preparing
  }

  private async prepare(): Promise<void> {
    const temp = join(this.root, TEMP_DIR)
    try {
      await mkdir(temp, { recursive: true })
      const now = Date.now()
      for (const entry of await readdir(temp)) {
        const path = join(temp, entry)
        const info = await stat(path).catch(() => undefined)
        if (info && now - info.mtimeMs > STALE_TEMP_MS) await rm(path, { force: true })
      }
    } catch (error) {
      this.fail('open', this.root, error)
    }
  }

  private path(key: string): string {
    checkKey(this.name, key)
    return join(this.root, key)
  }

  private fail(operation: string, key: string, error: unknown): never {
    const code = errnoOf(error)
    throw new StoreError(this.name, operation, key, code ?? (error instanceof Error ? error.message : String(error)), {
      cause: error,
      transient: code !== undefined && TRANSIENT_ERRNO.has(code),
    })
  }

  async get(key: string, options?: ReadOptions): Promise<Buffer | undefined> {
    const path = this.path(key)
    await this.ready
    if (!options?.range) {
      // The callback readFile opens, sizes, reads and closes in one go: about twice as fast
      // as the same steps through a FileHandle, and whole objects (chunks) are the hot path.
      try {
        return await readWhole(path)
      } catch (error) {
        if (isAbsent(error)) return undefined
        this.fail('get', key, error)
      }
    }
    if (options?.range && options.immutable) {
      try {
        return await this.openFiles.read(path, options.range, options.allocate)
      } catch (error) {
        this.fail('get', key, error)
      }
    }
    let handle
    try {
      handle = await open(path, 'r')
    } catch (error) {
      if (isAbsent(error)) return undefined
      this.fail('get', key, error)
    }
    try {
      const { size } = await handle.stat()
      const { start, end } = clipRange(size, options?.range)
      const bytes = Buffer.allocUnsafe(end - start)
      let filled = 0
      while (filled < bytes.length) {
        const { bytesRead } = await handle.read(bytes, filled, bytes.length - filled, start + filled)
        if (bytesRead === 0) break
        filled += bytesRead
      }
      return bytes.subarray(0, filled)
    } catch (error) {
      if (isAbsent(error)) return undefined
      this.fail('get', key, error)
    } finally {
      await handle.close()
    }
  }

  async stream(key: string, options?: ReadOptions): Promise<AsyncIterable<Uint8Array> | undefined> {
    const path = this.path(key)
    await this.ready
    try {
      const handle = await open(path, 'r')
      const { size } = await handle.stat().catch(async (error: unknown) => {
        await handle.close()
        throw error
      })
      const { start, end } = clipRange(size, options?.range)
      if (start === end) {
        await handle.close()
        return Readable.from([])
      }
      return handle.createReadStream({ start, end: end - 1, highWaterMark: 256 * 1024, signal: options?.signal })
    } catch (error) {
      if (isAbsent(error)) return undefined
      this.fail('stream', key, error)
    }
  }

  async head(key: string): Promise<number | undefined> {
    const path = this.path(key)
    await this.ready
    try {
      const info = await stat(path)
      return info.isFile() ? info.size : undefined
    } catch (error) {
      if (isAbsent(error)) return undefined
      this.fail('head', key, error)
    }
  }

  async put(key: string, bytes: Uint8Array, options?: PutOptions): Promise<void> {
    const path = this.path(key)
    await this.ready
    this.openFiles.forget(path)
    const temp = join(this.root, TEMP_DIR, `${randomUUID()}.part`)
    try {
      const handle = await open(temp, 'wx')
      try {
        options?.signal?.throwIfAborted()
        for (let written = 0; written < bytes.length; ) written += (await handle.write(bytes, written)).bytesWritten
        if (this.fsync && options?.durable !== false) await handle.sync()
      } finally {
        await handle.close()
      }
      const directory = dirname(path)
      if (!this.madeDirectories.has(directory)) {
        await mkdir(directory, { recursive: true })
        this.madeDirectories.add(directory)
      }
      await rename(temp, path).catch(async (error: unknown) => {
        // The directory went away under us (deleted by hand, or by GC): make it again.
        if (errnoOf(error) !== 'ENOENT') throw error
        await mkdir(directory, { recursive: true })
        await rename(temp, path)
      })
    } catch (error) {
      await rm(temp, { force: true })
      this.fail('put', key, error)
    }
  }

  async delete(key: string): Promise<void> {
    const path = this.path(key)
    await this.ready
    this.openFiles.forget(path)
    try {
      await unlink(path)
    } catch (error) {
      if (!isAbsent(error)) this.fail('delete', key, error)
      return
    }
    await this.removeIfEmpty(dirname(path))
  }

  /**
   * Removes the directory a delete left empty (a lease's, a shard's): over years of writes,
   * directories that hold nothing would otherwise pile up, and every listing walks them. A
   * put into it at the same time makes it again (see `put`).
   */
  private async removeIfEmpty(directory: string): Promise<void> {
    if (directory === this.root) return
    this.madeDirectories.delete(directory)
    // ENOTEMPTY (other objects remain) and ENOENT (removed already) are the usual answers.
    await rmdir(directory).catch(() => undefined)
  }

  deleteMany(keys: readonly string[]): Promise<void> {
    return deleteEach(this, keys)
  }

  /**
   * Removes temp files last changed before `before` (ms since the epoch): what a crash
   * left between writing and renaming. Garbage collection calls it with its grace cutoff,
   * so a write in progress is never touched. Returns what it removed (or, dry, would).
   */
  async sweepTemp(before: number, dryRun = false): Promise<{ objects: number; bytes: number }> {
    await this.ready
    const swept = { objects: 0, bytes: 0 }
    const temp = join(this.root, TEMP_DIR)
    for (const entry of await readdir(temp).catch((error: unknown) => this.fail('list', TEMP_DIR, error))) {
      const path = join(temp, entry)
      const info = await stat(path).catch(() => undefined)
      if (!info?.isFile() || info.mtimeMs >= before) continue
      if (!dryRun) await rm(path, { force: true })
      swept.objects++
      swept.bytes += info.size
    }
    return swept
  }

  /**
   * Removes the empty directories directly under `prefix` (a folder of keys, `leases/`):
   * what versions that left a directory behind on delete piled up. Returns how many went.
   */
  async pruneEmptyDirectories(prefix: string): Promise<number> {
    checkPrefix(this.name, prefix)
    await this.ready
    const base = join(this.root, prefix)
    let removed = 0
    for (const entry of await readdir(base, { withFileTypes: true }).catch(() => [])) {
      if (entry.isDirectory() && !entry.name.startsWith('.')) {
        if (await rmdir(join(base, entry.name)).then(() => true, () => false)) removed++
      }
    }
    return removed
  }

  async *list(prefix: string): AsyncGenerator<ListedObject> {
    checkPrefix(this.name, prefix)
    await this.ready
    const base = prefix.slice(0, prefix.lastIndexOf('/') + 1)
    yield* this.walk(base, prefix)
  }

  /**
   * Depth-first, in key order: a directory sorts as its name and a slash (so `ab-c` comes
   * before the keys under `ab/`, as it does in the full keys). Temp files and other
   * dot-names are never keys.
   */
  private async *walk(dirKey: string, prefix: string): AsyncGenerator<ListedObject> {
    let entries: Dirent[]
    try {
      entries = await readdir(join(this.root, dirKey), { withFileTypes: true })
    } catch (error) {
      if (isAbsent(error)) return
      this.fail('list', prefix, error)
    }
    const sortKey = (entry: Dirent): string => (entry.isDirectory() ? `${entry.name}/` : entry.name)
    entries.sort((a, b) => (sortKey(a) < sortKey(b) ? -1 : sortKey(a) > sortKey(b) ? 1 : 0))
    for (const entry of entries) {
      if (entry.name.startsWith('.')) continue
      const key = `${dirKey}${entry.name}`
      if (entry.isDirectory()) {
        if (`${key}/`.startsWith(prefix) || prefix.startsWith(`${key}/`)) yield* this.walk(`${key}/`, prefix)
      } else if (entry.isFile() && key.startsWith(prefix)) {
        const info = await stat(join(this.root, key)).catch(() => undefined)
        if (info) yield { key, size: info.size, modified: info.mtimeMs }
      }
    }
  }

  async close(): Promise<void> {
    this.openFiles.closeAll()
    await this.preparing?.catch(() => undefined)
  }
}

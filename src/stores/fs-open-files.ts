import { close, fstat, open, read } from 'node:fs'
import { clipRange, type ByteRange } from './store.ts'

interface OpenFile {
  readonly fd: number
  readonly size: number
  users: number
  lastUsed: number
  /** Replaced or deleted through this store: closed once its readers are done, never reused. */
  stale: boolean
}

const openFd = (path: string): Promise<number> => new Promise((resolve, reject) => open(path, 'r', (error, fd) => (error ? reject(error) : resolve(fd))))
const sizeOf = (fd: number): Promise<number> => new Promise((resolve, reject) => fstat(fd, (error, stats) => (error ? reject(error) : resolve(stats.size))))
const closeFd = (fd: number): void => close(fd, () => undefined)
const readAt = (fd: number, buffer: Buffer, offset: number, length: number, position: number): Promise<number> =>
  new Promise((resolve, reject) => read(fd, buffer, offset, length, position, (error, bytesRead) => (error ? reject(error) : resolve(bytesRead))))

/**
 * Files kept open between ranged reads of objects that never change (data packs, named by
 * their digest): a read of a span then costs one pread, where opening, sizing, reading and
 * closing a file costs four trips through libuv's thread pool, which was most of what
 * rendering a NAR from disk spent. At most `max` files stay open (least recently used
 * closed first, never one being read); a file unused for `idleMs` is closed, so a pack that
 * garbage collection deleted gives its disk space back soon after.
 */
export class OpenFiles {
  /** In order of last use, oldest first; `file` is set once the file is open. */
  private readonly entries = new Map<string, { opening: Promise<OpenFile>; file?: OpenFile }>()
  private sweeper: NodeJS.Timeout | undefined

  constructor(
    private readonly max = 64,
    private readonly idleMs = 10_000,
  ) {}

  /** Bytes `range` of the file at `path`, or undefined when there is no such file; errors are the file system's. */
  async read(path: string, range: ByteRange, allocate: (size: number) => Buffer = (size) => Buffer.allocUnsafe(size)): Promise<Buffer | undefined> {
    const file = await this.acquire(path)
    if (file === undefined) return undefined
    try {
      const { start, end } = clipRange(file.size, range)
      const bytes = allocate(end - start)
      let filled = 0
      while (filled < bytes.length) {
        const count = await readAt(file.fd, bytes, filled, bytes.length - filled, start + filled)
        if (count === 0) break
        filled += count
      }
      return filled === bytes.length ? bytes : bytes.subarray(0, filled)
    } finally {
      file.users--
      file.lastUsed = Date.now()
      if (file.stale && file.users === 0) closeFd(file.fd)
    }
  }

  /** The file at `path` changed or went through this store: its descriptor is not used again. */
  forget(path: string): void {
    const entry = this.entries.get(path)
    if (entry === undefined) return
    this.entries.delete(path)
    void entry.opening.then((file) => {
      file.stale = true
      if (file.users === 0) closeFd(file.fd)
    }, () => undefined)
  }

  closeAll(): void {
    clearInterval(this.sweeper)
    this.sweeper = undefined
    for (const path of [...this.entries.keys()]) this.forget(path)
  }

  private async acquire(path: string): Promise<OpenFile | undefined> {
    let entry = this.entries.get(path)
    if (entry === undefined) {
      const opening = (async (): Promise<OpenFile> => {
        const fd = await openFd(path)
        try {
          return { fd, size: await sizeOf(fd), users: 0, lastUsed: Date.now(), stale: false }
        } catch (error) {
          closeFd(fd)
          throw error
        }
      })()
      const created: { opening: Promise<OpenFile>; file?: OpenFile } = { opening }
      entry = created
      this.entries.set(path, created)
      opening.then((file) => (created.file = file), () => undefined)
      this.startSweeper()
    } else {
      this.entries.delete(path)
      this.entries.set(path, entry)
    }
    let file: OpenFile
    try {
      file = await entry.opening
    } catch (error) {
      if (this.entries.get(path) === entry) this.entries.delete(path)
      const code = (error as NodeJS.ErrnoException).code
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') return undefined
      throw error
    }
    file.users++
    this.evict()
    return file
  }

  /** Closes the least recently used idle files beyond `max`. */
  private evict(): void {
    for (const [path, entry] of this.entries) {
      if (this.entries.size <= this.max) return
      if (entry.file?.users === 0) this.forget(path)
    }
  }

  private startSweeper(): void {
    if (this.sweeper !== undefined) return
    this.sweeper = setInterval(() => {
      const before = Date.now() - this.idleMs
      for (const [path, entry] of this.entries) if (entry.file?.users === 0 && entry.file.lastUsed < before) this.forget(path)
      if (this.entries.size === 0) {
        clearInterval(this.sweeper)
        this.sweeper = undefined
      }
    }, Math.max(1, this.idleMs / 2))
    this.sweeper.unref()
  }
}

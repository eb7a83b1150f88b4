import { randomUUID } from 'node:crypto'
import { mkdir, open, readdir, rm, unlink, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { ByteBudget } from '../../budget.ts'
import { NixcasError } from '../../errors.ts'
import type { Keep } from './keep.ts'

const SUFFIX = '.spool'
/** Bytes one read of a spool file returns at most: what a response or the ingest takes at once. */
const READ_BYTES = 1024 * 1024

/** Whether a process with this pid runs (EPERM: it does, as another user). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * Temp files on local disk holding whole upstream downloads, so that clients and the ingest
 * each read them at their own pace. A file is unlinked as soon as it is open (the kernel
 * frees it when the last descriptor closes, also if the process dies); what a crash leaves
 * in the instant between is removed by the next start (files of pids that no longer run).
 * The bytes of all files together stay within `capacity`, reserved whole (the NarSize) when
 * a download starts; a download that does not fit is kept in a window instead.
 */
export class Spool {
  readonly budget: ByteBudget

  private constructor(
    readonly dir: string,
    capacity: number,
  ) {
    this.budget = new ByteBudget(capacity)
  }

  /** Creates `dir` and removes crash leftovers; fails naming the directory. */
  static async open(dir: string, capacity: number): Promise<Spool> {
    try {
      await mkdir(dir, { recursive: true })
      for (const name of await readdir(dir)) {
        const pid = Number(/^(\d+)-/.exec(name)?.[1])
        if (name.endsWith(SUFFIX) && !(pid === process.pid || (Number.isInteger(pid) && alive(pid)))) await rm(join(dir, name), { force: true })
      }
    } catch (error) {
      throw new NixcasError('BAD_CONFIG', `upstreamSpoolDir ${dir}: ${(error as Error).message}`, { cause: error })
    }
    return new Spool(dir, capacity)
  }

  /** A spool file for a NAR of `size` bytes, or undefined when the spool has no room for it. */
  async file(size: number): Promise<SpoolFile | undefined> {
    if (!this.budget.tryAcquire(size, false)) return undefined
    const path = join(this.dir, `${process.pid}-${randomUUID()}${SUFFIX}`)
    let handle: FileHandle | undefined
    try {
      handle = await open(path, 'wx+', 0o600)
      await unlink(path)
      return new SpoolFile(handle, size, () => this.budget.release(size))
    } catch (error) {
      this.budget.release(size)
      await handle?.close().catch(() => undefined)
      await rm(path, { force: true })
      throw error
    }
  }
}

/** Bytes gathered in memory before one write to a spool file: few round trips to the disk. */
const WRITE_BYTES = 1024 * 1024

/**
 * One download's spool file: appended by the download, read anywhere already added. The
 * newest bytes (under WRITE_BYTES, and one write in progress) are read from memory; each
 * full buffer is written in one go and a new one taken, so a view handed to a reader is
 * never overwritten.
 */
export class SpoolFile implements Keep {
  readonly paced = false
  readonly start = 0
  /** Bytes in the file. */
  private inFile = 0
  /** The buffer being written, at offset `inFile`. */
  private writing: Uint8Array | undefined
  private pending = Buffer.allocUnsafe(WRITE_BYTES)
  private pendingLength = 0
  private closed: Promise<void> | undefined

  constructor(
    private readonly handle: FileHandle,
    private readonly size: number,
    private readonly release: () => void,
  ) {}

  private get pendingAt(): number {
    return this.inFile + (this.writing?.length ?? 0)
  }

  async add(piece: Uint8Array): Promise<Uint8Array> {
    if (this.pendingAt + this.pendingLength + piece.length > this.size) throw new NixcasError('INTERNAL', `a spool file of ${this.size} bytes was given more`)
    for (let done = 0; done < piece.length; ) {
      const taken = Math.min(piece.length - done, WRITE_BYTES - this.pendingLength)
      this.pending.set(piece.subarray(done, done + taken), this.pendingLength)
      this.pendingLength += taken
      done += taken
      if (this.pendingLength === WRITE_BYTES) await this.flush()
    }
    return piece
  }

  private async flush(): Promise<void> {
    const full = this.pending
    this.writing = full
    this.pending = Buffer.allocUnsafe(WRITE_BYTES)
    this.pendingLength = 0
    for (let done = 0; done < full.length; ) {
      const { bytesWritten } = await this.handle.write(full, done, full.length - done, this.inFile + done)
      done += bytesWritten
    }
    this.inFile += full.length
    this.writing = undefined
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    if (offset >= this.pendingAt && offset < this.pendingAt + this.pendingLength) {
      const at = offset - this.pendingAt
      return this.pending.subarray(at, Math.min(this.pendingLength, at + length))
    }
    if (this.writing && offset >= this.inFile && offset < this.pendingAt) {
      const at = offset - this.inFile
      return this.writing.subarray(at, Math.min(this.writing.length, at + length))
    }
    const wanted = Math.min(length, READ_BYTES, this.inFile - offset)
    if (wanted <= 0) throw new NixcasError('INTERNAL', `offset ${offset} is not in the spool file`)
    const buffer = Buffer.allocUnsafe(wanted)
    const { bytesRead } = await this.handle.read(buffer, 0, wanted, offset)
    if (bytesRead === 0) throw new NixcasError('INTERNAL', `the spool file ends before offset ${offset}`)
    return buffer.subarray(0, bytesRead)
  }

  /** The room is given back at once (nothing reads after), the disk space once the file is closed. */
  free(): Promise<void> {
    if (this.closed === undefined) {
      this.release()
      this.pending = Buffer.alloc(0)
      this.closed = this.handle.close()
    }
    return this.closed
  }
}

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
 * Full buffers a spool file may hold in memory while its writes catch up. The download goes
 * on while a write is in progress (awaiting each write would stall the upstream socket once
 * per buffer); past this, it waits for the disk.
 */
const WRITES_BEHIND = 8

/**
 * One download's spool file: appended by the download, read anywhere already added. The
 * newest bytes are read from memory: the buffer being filled and the full ones not yet
 * written (written one after the other, in order, while the download goes on). A buffer is
 * never reused, so a view handed to a reader is never overwritten.
 */
export class SpoolFile implements Keep {
  readonly paced = false
  readonly start = 0
  /** Bytes in the file. */
  private inFile = 0
  /** Full buffers not yet in the file, in order from offset `inFile`; the first is being written. */
  private readonly unwritten: Buffer[] = []
  private pending = Buffer.allocUnsafe(WRITE_BYTES)
  private pendingLength = 0
  /** The writes in progress, as one chain; rejects (and every add after it) once a write failed. */
  private writing: Promise<void> = Promise.resolve()
  private writeFailure: { error: unknown } | undefined
  private closed: Promise<void> | undefined

  constructor(
    private readonly handle: FileHandle,
    private readonly size: number,
    private readonly release: () => void,
  ) {}

  private get pendingAt(): number {
    return this.inFile + this.unwritten.length * WRITE_BYTES
  }

  async add(piece: Uint8Array): Promise<Uint8Array> {
    if (this.writeFailure) throw this.writeFailure.error
    if (this.pendingAt + this.pendingLength + piece.length > this.size) throw new NixcasError('INTERNAL', `a spool file of ${this.size} bytes was given more`)
    for (let done = 0; done < piece.length; ) {
      const taken = Math.min(piece.length - done, WRITE_BYTES - this.pendingLength)
      this.pending.set(piece.subarray(done, done + taken), this.pendingLength)
      this.pendingLength += taken
      done += taken
      if (this.pendingLength === WRITE_BYTES) {
        this.queue()
        if (this.unwritten.length > WRITES_BEHIND) await this.writing
      }
    }
    return piece
  }

  /** Hands the full buffer to the writes and takes a new one. */
  private queue(): void {
    const full = this.pending
    this.unwritten.push(full)
    this.pending = Buffer.allocUnsafe(WRITE_BYTES)
    this.pendingLength = 0
    this.writing = this.writing.then(async () => {
      for (let done = 0; done < full.length; ) {
        const { bytesWritten } = await this.handle.write(full, done, full.length - done, this.inFile + done)
        done += bytesWritten
      }
      this.inFile += full.length
      this.unwritten.shift()
    })
    this.writing.catch((error: unknown) => (this.writeFailure ??= { error }))
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    if (this.writeFailure) throw this.writeFailure.error
    if (offset >= this.inFile) {
      const at = offset - this.inFile
      const index = Math.floor(at / WRITE_BYTES)
      const buffer = this.unwritten[index] ?? (index === this.unwritten.length ? this.pending.subarray(0, this.pendingLength) : undefined)
      const from = at - index * WRITE_BYTES
      if (buffer === undefined || from >= buffer.length) throw new NixcasError('INTERNAL', `offset ${offset} is not in the spool file`)
      return buffer.subarray(from, Math.min(buffer.length, from + length))
    }
    const wanted = Math.min(length, READ_BYTES, this.inFile - offset)
    const buffer = Buffer.allocUnsafe(wanted)
    const { bytesRead } = await this.handle.read(buffer, 0, wanted, offset)
    if (bytesRead === 0) throw new NixcasError('INTERNAL', `the spool file ends before offset ${offset}`)
    return buffer.subarray(0, bytesRead)
  }

  /** The room is given back at once (nothing reads after), the disk space once the writes ended and the file is closed. */
  free(): Promise<void> {
    if (this.closed === undefined) {
      this.release()
      this.pending = Buffer.alloc(0)
      this.closed = this.writing.catch(() => undefined).then(() => this.handle.close())
    }
    return this.closed
  }
}

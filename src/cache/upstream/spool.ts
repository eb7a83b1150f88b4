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
 * Bytes a spool file may hold in memory beyond the write being gathered, while its writes
 * catch up. The download goes on while a write is in progress (awaiting each write would
 * stall the upstream socket once per write); past this, it waits for the disk. Small on
 * purpose: pieces held longer make the allocator hand out fresh pages, and faulting those in
 * cost the first download more than the waits (the doc NAR through nixcas: 0.54-0.59 s with
 * 2 MiB, 0.58-0.64 s with 8, 0.77-0.85 s with 128).
 */
const BEHIND_BYTES = 2 * WRITE_BYTES

/** Writes `pieces` at `position`, one writev while the disk takes them whole, resumed where a short write left off. */
async function writeAll(handle: FileHandle, pieces: Uint8Array[], position: number): Promise<void> {
  for (let rest = pieces; rest.length > 0; ) {
    let { bytesWritten } = await handle.writev(rest, position)
    position += bytesWritten
    let next = 0
    while (next < rest.length && bytesWritten >= (rest[next]?.length ?? 0)) bytesWritten -= rest[next++]?.length ?? 0
    rest = rest.slice(next)
    if (bytesWritten > 0 && rest[0] !== undefined) rest[0] = rest[0].subarray(bytesWritten)
  }
}

/**
 * One download's spool file: appended by the download, read anywhere already added. The
 * newest bytes are read from memory: the pieces as added (the download hands them over, so
 * they are neither copied nor changed), kept until the write that holds them is done;
 * writes go one after the other, in order, while the download goes on. Bytes read from
 * memory are shared with other readers: a reader must not change them or transfer them.
 */
export class SpoolFile implements Keep {
  readonly paced = false
  readonly start = 0
  /** Bytes in the file. */
  private inFile = 0
  /** Pieces not yet in the file, in order from offset `inFile`; the first `queued` of them are being written. */
  private held: Uint8Array[] = []
  /** Each held piece's NAR offset. */
  private heldAt: number[] = []
  private heldBytes = 0
  /** Held pieces handed to the writes, and their bytes. */
  private queued = 0
  private queuedBytes = 0
  /** The writes in progress, as one chain; rejects (and every add after it) once a write failed. */
  private writing: Promise<void> = Promise.resolve()
  private writeFailure: { error: unknown } | undefined
  private closed: Promise<void> | undefined

  constructor(
    private readonly handle: FileHandle,
    private readonly size: number,
    private readonly release: () => void,
  ) {}

  /** Keeps `piece` itself: the caller gives it up. */
  async add(piece: Uint8Array): Promise<Uint8Array> {
    if (this.writeFailure) throw this.writeFailure.error
    const end = this.inFile + this.heldBytes
    if (end + piece.length > this.size) throw new NixcasError('INTERNAL', `a spool file of ${this.size} bytes was given more`)
    if (piece.length === 0) return piece
    this.held.push(piece)
    this.heldAt.push(end)
    this.heldBytes += piece.length
    if (this.heldBytes - this.queuedBytes >= WRITE_BYTES || end + piece.length === this.size) {
      this.queue()
      if (this.heldBytes > BEHIND_BYTES) await this.writing
    }
    return piece
  }

  /** Hands the held pieces not yet queued to the writes, as one writev after those before. */
  private queue(): void {
    const pieces = this.held.slice(this.queued)
    const bytes = this.heldBytes - this.queuedBytes
    this.queued = this.held.length
    this.queuedBytes = this.heldBytes
    this.writing = this.writing.then(async () => {
      await writeAll(this.handle, pieces, this.inFile)
      this.inFile += bytes
      this.held.splice(0, pieces.length)
      this.heldAt.splice(0, pieces.length)
      this.heldBytes -= bytes
      this.queued -= pieces.length
      this.queuedBytes -= bytes
    })
    this.writing.catch((error: unknown) => (this.writeFailure ??= { error }))
  }

  /** Resolves once every byte added is in the file (reads of them then return buffers of their own). */
  async flush(): Promise<void> {
    if (this.queuedBytes < this.heldBytes) this.queue()
    await this.writing
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    if (this.writeFailure) throw this.writeFailure.error
    if (offset >= this.inFile) {
      // The last held piece that starts at or before `offset`.
      let low = 0
      for (let high = this.heldAt.length - 1; low < high; ) {
        const middle = (low + high + 1) >> 1
        if ((this.heldAt[middle] ?? 0) <= offset) low = middle
        else high = middle - 1
      }
      const piece = this.held[low]
      const from = offset - (this.heldAt[low] ?? 0)
      if (piece === undefined || from < 0 || from >= piece.length) throw new NixcasError('INTERNAL', `offset ${offset} is not in the spool file`)
      return piece.subarray(from, Math.min(piece.length, from + length))
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
      this.closed = this.writing.catch(() => undefined).then(() => this.handle.close())
    }
    return this.closed
  }
}

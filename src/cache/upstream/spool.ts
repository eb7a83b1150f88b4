import { randomUUID } from 'node:crypto'
import { mkdir, open, readdir, rm, unlink, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { ByteBudget } from '../../budget.ts'
import { NixcasError } from '../../errors.ts'
import type { Keep } from './keep.ts'
import { Pieces } from './pieces.ts'

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
 * they are not copied unless small; see Pieces), held until the write that holds them is
 * done; writes go one after the other, in order, while the download goes on. Bytes read
 * from memory are shared with other readers: a reader must not change them or transfer them.
 */
export class SpoolFile implements Keep {
  readonly paced = false
  readonly start = 0
  /** Bytes not yet in the file, from the file's end on (held.start is the file's size). */
  private readonly held = new Pieces(false)
  /** Held pieces handed to the writes, and where the bytes handed over end. */
  private queued = 0
  private queuedEnd = 0
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
    if (this.held.end + piece.length > this.size) throw new NixcasError('INTERNAL', `a spool file of ${this.size} bytes was given more`)
    this.held.append(piece)
    if (this.held.end - this.queuedEnd >= WRITE_BYTES || this.held.end === this.size) {
      this.queue()
      if (this.held.end - this.held.start > BEHIND_BYTES) await this.writing
    }
    return piece
  }

  /** Hands the held pieces not yet queued to the writes, as one writev after those before. */
  private queue(): void {
    this.held.seal()
    const pieces = this.held.from(this.queued)
    const position = this.queuedEnd
    this.queued += pieces.length
    this.queuedEnd = this.held.end
    this.writing = this.writing.then(async () => {
      await writeAll(this.handle, pieces, position)
      this.held.dropFirst(pieces.length)
      this.queued -= pieces.length
    })
    this.writing.catch((error: unknown) => (this.writeFailure ??= { error }))
  }

  /** Resolves once every byte added is in the file (reads of them then return buffers of their own). */
  async flush(): Promise<void> {
    if (this.queuedEnd < this.held.end) this.queue()
    await this.writing
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    if (this.writeFailure) throw this.writeFailure.error
    if (offset >= this.held.start) return this.held.read(offset, length)
    const inFile = this.held.start
    const wanted = Math.min(length, READ_BYTES, inFile - offset)
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

import type { Dirent } from 'node:fs'
import { lstat, open, readdir, readlink, type FileHandle } from 'node:fs/promises'
import { NixcasError } from '../errors.ts'
import type { NarEvent } from '../nix/nar-format.ts'

const CHUNK = 1024 * 1024
/** Files up to this size are read whole, ahead of time; larger ones stream in CHUNK reads. */
const SMALL_FILE = 256 * 1024
/** How many entries of a directory are opened ahead: small files cost syscalls, not bytes. */
const LOOKAHEAD = 32
const SLASH = Buffer.from('/')

type Kind = 'file' | 'directory' | 'symlink' | 'other'

function kindOf(entry: { isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean }): Kind {
  if (entry.isSymbolicLink()) return 'symlink'
  if (entry.isFile()) return 'file'
  if (entry.isDirectory()) return 'directory'
  return 'other'
}

interface OpenedFile {
  executable: boolean
  size: number
  /** The whole contents for a small file; otherwise the open handle to stream from. */
  contents: Buffer | FileHandle
}

async function openFile(path: Buffer): Promise<OpenedFile> {
  const handle = await open(path, 'r')
  try {
    const stat = await handle.stat()
    // Nix marks a file executable when its owner may execute it.
    const executable = (stat.mode & 0o100) !== 0
    if (stat.size > SMALL_FILE) return { executable, size: stat.size, contents: handle }
    const contents = Buffer.allocUnsafe(stat.size)
    const { bytesRead } = stat.size > 0 ? await handle.read(contents, 0, stat.size, 0) : { bytesRead: 0 }
    await handle.close()
    if (bytesRead !== stat.size) throw new NixcasError('BAD_REQUEST', `${path.toString()} changed while it was being read`)
    return { executable, size: stat.size, contents }
  } catch (error) {
    await handle.close().catch(() => undefined)
    throw error
  }
}

async function* fileEvents(path: Buffer, name: Uint8Array | null, file: OpenedFile): AsyncGenerator<NarEvent> {
  yield { type: 'file', name, executable: file.executable, size: file.size }
  const { contents } = file
  if (Buffer.isBuffer(contents)) {
    if (contents.length > 0) yield { type: 'data', bytes: contents }
    return
  }
  try {
    let seen = 0
    while (seen < file.size) {
      // A fresh buffer per read: consumers may keep the chunks they are given.
      const buffer = Buffer.allocUnsafe(Math.min(CHUNK, file.size - seen))
      const { bytesRead } = await contents.read(buffer, 0, buffer.length, seen)
      if (bytesRead === 0) throw new NixcasError('BAD_REQUEST', `${path.toString()} shrank while it was being read`)
      seen += bytesRead
      yield { type: 'data', bytes: bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead) }
    }
  } finally {
    await contents.close()
  }
}

async function* directoryEvents(path: Buffer, name: Uint8Array | null): AsyncGenerator<NarEvent> {
  yield { type: 'directory', name }
  const entries = (await readdir(path, { encoding: 'buffer', withFileTypes: true })) as Dirent<Buffer>[]
  entries.sort((a, b) => Buffer.compare(a.name, b.name))
  const childPath = (entry: Dirent<Buffer>): Buffer => Buffer.concat([path, SLASH, entry.name])
  // Files are opened a few entries ahead, so their syscalls overlap with the consumer.
  const opened = new Map<number, Promise<OpenedFile>>()
  const prefetch = (index: number): void => {
    const entry = entries[index]
    if (entry && !opened.has(index) && kindOf(entry) === 'file') {
      const promise = openFile(childPath(entry))
      promise.catch(() => undefined) // surfaced when the entry is reached
      opened.set(index, promise)
    }
  }
  try {
    for (let index = 0; index < entries.length; index++) {
      for (let ahead = index; ahead < Math.min(entries.length, index + LOOKAHEAD); ahead++) prefetch(ahead)
      const entry = entries[index] as Dirent<Buffer>
      const file = opened.get(index)
      opened.delete(index)
      if (file) yield* fileEvents(childPath(entry), entry.name, await file)
      else yield* nodeEvents(childPath(entry), entry.name, kindOf(entry))
    }
  } finally {
    // Stopped early: close whatever was opened ahead.
    for (const file of opened.values()) {
      void file.then(({ contents }) => (Buffer.isBuffer(contents) ? undefined : contents.close())).catch(() => undefined)
    }
  }
  yield { type: 'end' }
}

// Paths travel as Buffers so names that are not UTF-8 survive unchanged.
async function* nodeEvents(path: Buffer, name: Uint8Array | null, kind: Kind): AsyncGenerator<NarEvent> {
  if (kind === 'symlink') yield { type: 'symlink', name, target: await readlink(path, { encoding: 'buffer' }) }
  else if (kind === 'file') yield* fileEvents(path, name, await openFile(path))
  else if (kind === 'directory') yield* directoryEvents(path, name)
  else throw new NixcasError('BAD_REQUEST', `${path.toString()} is neither a regular file, a directory nor a symlink`)
}

/** Serialises a file system tree as NAR events, entries in byte order like `nix-store --dump`. */
export async function* dumpPath(path: string): AsyncGenerator<NarEvent> {
  const root = Buffer.from(path)
  yield* nodeEvents(root, null, kindOf(await lstat(root)))
}

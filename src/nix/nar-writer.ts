import {
  CLOSE,
  DIRECTORY_HEADER,
  MAGIC_BYTES,
  NarError,
  entryHeader,
  entryNameProblem,
  entryOrderProblem,
  fileHeader,
  fileTrailer,
  symlinkNode,
  symlinkTargetProblem,
  type NarEvent,
} from './nar-format.ts'

/** Framing is gathered into blocks of about this size so small files do not become tiny writes. */
const BLOCK = 64 * 1024

/**
 * Turns NAR events back into NAR bytes. The writer checks what it is given (entry names,
 * their order, file sizes against the data that follows) so it can only ever emit the
 * canonical form.
 */
export async function* writeNar(events: AsyncIterable<NarEvent> | Iterable<NarEvent>): AsyncGenerator<Uint8Array> {
  let pending: Uint8Array[] = [MAGIC_BYTES]
  let pendingBytes = MAGIC_BYTES.length
  let offset = 0
  const push = (bytes: Uint8Array): void => {
    pending.push(bytes)
    pendingBytes += bytes.length
  }
  const flush = (): Uint8Array => {
    const out = pending.length === 1 ? (pending[0] as Uint8Array) : Buffer.concat(pending, pendingBytes)
    offset += out.length
    pending = []
    pendingBytes = 0
    return out
  }
  function fail(message: string): never {
    throw new NarError('bad-event-order', offset + pendingBytes, message)
  }

  // One entry per open directory: the last name written in it.
  const directories: (Uint8Array | null)[] = []
  let fileRemaining = 0
  let fileSize = 0
  let inFile = false
  let done = false

  const open = (name: Uint8Array | null): void => {
    if (done) fail('an event follows the root node')
    if (directories.length === 0) {
      if (name !== null) fail('the root node must have no name')
      return
    }
    if (name === null) fail('an entry needs a name')
    const problem = entryNameProblem(name) ?? entryOrderProblem(directories.at(-1) ?? null, name)
    if (problem) throw new NarError(problem.reason, offset + pendingBytes, problem.message)
    directories[directories.length - 1] = name
    push(entryHeader(name))
  }
  // Closes a finished node: its entry's `)` when it is inside a directory.
  const closeNode = (): void => {
    if (directories.length > 0) push(CLOSE)
    else done = true
  }
  const closeFile = (): void => {
    inFile = false
    push(fileTrailer(fileSize))
    closeNode()
  }

  for await (const event of events) {
    if (inFile && event.type !== 'data') fail(`a file ended ${fileRemaining} bytes short of its size`)
    switch (event.type) {
      case 'data': {
        if (!inFile || event.bytes.length > fileRemaining) fail('data beyond the end of a file')
        if (event.bytes.length === 0) break
        fileRemaining -= event.bytes.length
        if (pendingBytes > 0) yield flush()
        offset += event.bytes.length
        yield event.bytes
        if (fileRemaining === 0) closeFile()
        break
      }
      case 'file': {
        open(event.name)
        push(fileHeader(event.executable, event.size))
        inFile = true
        fileSize = event.size
        fileRemaining = event.size
        if (fileRemaining === 0) closeFile()
        break
      }
      case 'symlink': {
        open(event.name)
        const problem = symlinkTargetProblem(event.target)
        if (problem) throw new NarError(problem.reason, offset + pendingBytes, problem.message)
        push(symlinkNode(event.target))
        closeNode()
        break
      }
      case 'directory': {
        open(event.name)
        push(DIRECTORY_HEADER)
        directories.push(null)
        break
      }
      case 'end': {
        if (directories.length === 0) fail('"end" without an open directory')
        directories.pop()
        push(CLOSE)
        closeNode()
        break
      }
    }
    if (pendingBytes >= BLOCK) yield flush()
  }
  if (inFile) fail(`a file ended ${fileRemaining} bytes short of its size`)
  if (!done) fail('the events ended before the root node was complete')
  if (pendingBytes > 0) yield flush()
}

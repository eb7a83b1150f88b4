import {
  MAGIC_BYTES,
  NAR_MAGIC,
  NAR_NAME_MAX,
  NAR_TARGET_MAX,
  NarError,
  entryNameProblem,
  entryOrderProblem,
  padding,
  symlinkTargetProblem,
  type NarErrorReason,
  type NarEvent,
} from './nar-format.ts'

const EMPTY = new Uint8Array(0)
/** Longest token the grammar has ("nix-archive-1"), with room to report a wrong one. */
const TOKEN_MAX = 16

/** Whether `bytes` are the characters of `text` (all below 256). */
function isLatin1(bytes: Uint8Array, text: string): boolean {
  if (bytes.length !== text.length) return false
  for (let index = 0; index < bytes.length; index++) if (bytes[index] !== text.charCodeAt(index)) return false
  return true
}

function toAsync<T>(iterator: Iterator<T>): AsyncIterator<T> {
  return { next: () => Promise.resolve(iterator.next()) }
}

/** Pulls exact byte counts out of an async iterable of chunks, tracking the absolute offset. */
class ByteSource {
  private readonly chunks: AsyncIterator<Uint8Array>
  private buffer: Uint8Array = EMPTY
  private position = 0
  offset = 0

  constructor(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>) {
    this.chunks = Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : toAsync(source[Symbol.iterator]())
  }

  private async fill(): Promise<boolean> {
    while (this.position >= this.buffer.length) {
      const next = await this.chunks.next()
      if (next.done) return false
      this.buffer = next.value
      this.position = 0
    }
    return true
  }

  async readExact(length: number, what: string): Promise<Uint8Array> {
    const available = this.buffer.length - this.position
    if (available >= length) {
      const out = this.buffer.subarray(this.position, this.position + length)
      this.position += length
      this.offset += length
      return out
    }
    const out = new Uint8Array(length)
    let filled = 0
    while (filled < length) {
      if (!(await this.fill())) throw new NarError('truncated', this.offset, `the NAR ends inside ${what}`)
      const take = Math.min(length - filled, this.buffer.length - this.position)
      out.set(this.buffer.subarray(this.position, this.position + take), filled)
      this.position += take
      this.offset += take
      filled += take
    }
    return out
  }

  /** Yields `length` bytes as slices of the incoming chunks, without copying. */
  async *stream(length: number, what: string): AsyncGenerator<Uint8Array> {
    let remaining = length
    while (remaining > 0) {
      if (!(await this.fill())) throw new NarError('truncated', this.offset, `the NAR ends inside ${what}`)
      const take = Math.min(remaining, this.buffer.length - this.position)
      const slice = this.buffer.subarray(this.position, this.position + take)
      this.position += take
      this.offset += take
      remaining -= take
      yield slice
    }
  }

  async atEnd(): Promise<boolean> {
    return !(await this.fill())
  }
}

interface Frame {
  previousName: Uint8Array | null
}

/** Streams the NAR grammar out of bytes, refusing anything but the canonical form Nix writes. */
class NarParser {
  private readonly source: ByteSource

  constructor(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>) {
    this.source = new ByteSource(source)
  }

  private fail(reason: NarErrorReason, offset: number, message: string): never {
    throw new NarError(reason, offset, message)
  }

  private async readLength(max: number, what: string, tooLong: NarErrorReason = 'length-too-large'): Promise<number> {
    const at = this.source.offset
    const bytes = await this.source.readExact(8, `the length of ${what}`)
    const word = (from: number): number => ((bytes[from] as number) | ((bytes[from + 1] as number) << 8) | ((bytes[from + 2] as number) << 16) | ((bytes[from + 3] as number) << 24)) >>> 0
    const high = word(4)
    const length = high * 2 ** 32 + word(0)
    if (high >= 2 ** 21 || length > max) {
      this.fail(tooLong, at, `${what} declares ${new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true)} bytes, more than ${max}`)
    }
    return length
  }

  private async readPadding(length: number, what: string): Promise<void> {
    const pad = padding(length)
    if (pad === 0) return
    const at = this.source.offset
    const bytes = await this.source.readExact(pad, `the padding of ${what}`)
    if (bytes.some((byte) => byte !== 0)) this.fail('bad-padding', at, `the padding of ${what} is not zero`)
  }

  private async readString(max: number, what: string, tooLong?: NarErrorReason): Promise<Uint8Array> {
    const length = await this.readLength(max, what, tooLong)
    const bytes = await this.source.readExact(length, what)
    await this.readPadding(length, what)
    return bytes
  }

  private async readToken(): Promise<{ token: string; offset: number }> {
    const offset = this.source.offset
    const bytes = await this.readString(TOKEN_MAX, 'a token')
    return { token: String.fromCharCode(...bytes), offset }
  }

  private async expect(expected: string): Promise<void> {
    const offset = this.source.offset
    const length = await this.readLength(Number.MAX_SAFE_INTEGER, `the token "${expected}"`)
    if (length !== expected.length) this.fail('unexpected-token', offset, `expected "${expected}", got a string of ${length} bytes`)
    const bytes = await this.source.readExact(length, `the token "${expected}"`)
    // Compared in place: every entry has several tokens, and a copy each added up.
    if (!isLatin1(bytes, expected)) this.fail('unexpected-token', offset, `expected "${expected}", got ${JSON.stringify(Buffer.from(bytes).toString('latin1'))}`)
    await this.readPadding(length, `the token "${expected}"`)
  }

  async *events(): AsyncGenerator<NarEvent> {
    const magic = await this.source.readExact(MAGIC_BYTES.length, 'the magic')
    if (Buffer.compare(magic, MAGIC_BYTES) !== 0) this.fail('bad-magic', 0, `the NAR does not start with "${NAR_MAGIC}"`)

    const stack: Frame[] = []
    let name: Uint8Array | null = null
    for (;;) {
      // One node: the root, or the node of the entry just opened.
      const opened = yield* this.node(name)
      if (opened) {
        stack.push({ previousName: null })
      } else if (stack.length > 0) {
        await this.expect(')') // closes the entry
      }
      // Find the next entry, closing finished directories on the way up.
      name = null
      while (stack.length > 0) {
        const frame = stack.at(-1) as Frame
        const { token, offset } = await this.readToken()
        if (token === ')') {
          stack.pop()
          yield { type: 'end' }
          if (stack.length > 0) await this.expect(')')
          continue
        }
        if (token !== 'entry') this.fail('unexpected-token', offset, `expected "entry" or ")", got ${JSON.stringify(token)}`)
        await this.expect('(')
        await this.expect('name')
        const nameAt = this.source.offset
        const entryName = await this.readString(NAR_NAME_MAX, 'an entry name', 'name-too-long')
        const problem = entryNameProblem(entryName) ?? entryOrderProblem(frame.previousName, entryName)
        if (problem) this.fail(problem.reason, nameAt, problem.message)
        frame.previousName = entryName
        await this.expect('node')
        name = entryName
        break
      }
      if (stack.length === 0 && name === null) break
    }
    if (!(await this.source.atEnd())) this.fail('trailing-data', this.source.offset, 'bytes follow the root node')
  }

  /** Reads one node; returns true when it opened a directory whose entries follow. */
  private async *node(name: Uint8Array | null): AsyncGenerator<NarEvent, boolean> {
    await this.expect('(')
    await this.expect('type')
    const { token: type, offset } = await this.readToken()
    if (type === 'regular') {
      let next = await this.readToken()
      const executable = next.token === 'executable'
      if (executable) {
        await this.expect('')
        next = await this.readToken()
      }
      if (next.token !== 'contents') this.fail('unexpected-token', next.offset, `expected "contents", got ${JSON.stringify(next.token)}`)
      const size = await this.readLength(Number.MAX_SAFE_INTEGER, 'the file contents')
      yield { type: 'file', name, executable, size }
      for await (const bytes of this.source.stream(size, 'the file contents')) yield { type: 'data', bytes }
      await this.readPadding(size, 'the file contents')
      await this.expect(')')
      return false
    }
    if (type === 'symlink') {
      await this.expect('target')
      const targetAt = this.source.offset
      const target = await this.readString(NAR_TARGET_MAX, 'a symlink target', 'target-too-long')
      const problem = symlinkTargetProblem(target)
      if (problem) this.fail(problem.reason, targetAt, problem.message)
      await this.expect(')')
      yield { type: 'symlink', name, target }
      return false
    }
    if (type === 'directory') {
      yield { type: 'directory', name }
      return true
    }
    return this.fail('bad-node-type', offset, `unknown node type ${JSON.stringify(type)}`)
  }
}

/**
 * Parses a NAR stream into events. File contents arrive as `data` events sliced from the
 * input chunks, so memory stays flat whatever the NAR's size. Throws NarError on anything
 * that is not the canonical form.
 */
export function readNar(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): AsyncGenerator<NarEvent> {
  return new NarParser(source).events()
}

import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { pipeline } from 'node:stream/promises'
import { Readable, Writable } from 'node:stream'
import type { IngestEvent } from '../../../src/ingest/events.ts'
import type { CodecMethod } from '../../../src/codec/methods.ts'
import type { IngestWorkers } from '../../../src/ingest/parse/workers.ts'
import { NixcasError } from '../../../src/errors.ts'
import { NarError } from '../../../src/nix/nar-format.ts'

/** What Nix uploads NARs with. */
export type NixMethod = Extract<CodecMethod, 'none' | 'xz' | 'zstd' | 'bzip2'>

const COMPRESSORS: Record<Exclude<NixMethod, 'none'>, string[]> = {
  xz: ['xz', '-c', '-T1'],
  zstd: ['zstd', '-c', '-q'],
  bzip2: ['bzip2', '-c'],
}

/** `source` compressed by the real command-line tool (as Nix's uploads are made by its libraries). */
export async function compress(source: Uint8Array | AsyncIterable<Uint8Array>, method: NixMethod): Promise<Buffer> {
  if (method === 'none') {
    if (source instanceof Uint8Array) return Buffer.from(source)
    const parts: Uint8Array[] = []
    for await (const part of source) parts.push(part)
    return Buffer.concat(parts)
  }
  const [command, ...args] = COMPRESSORS[method] as [string, ...string[]]
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'inherit'] })
  const parts: Buffer[] = []
  const exited = once(child, 'exit')
  await Promise.all([
    pipeline(source instanceof Uint8Array ? Readable.from([source]) : Readable.from(source), child.stdin),
    pipeline(
      child.stdout,
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          parts.push(chunk)
          done()
        },
      }),
    ),
  ])
  const [code] = (await exited) as [number | null]
  if (code !== 0) throw new Error(`${command} exited with ${code}`)
  return Buffer.concat(parts)
}

/**
 * `bytes` in pieces of the given sizes (cycled), each a fresh copy: the pool takes
 * ownership of whole-buffer chunks, and the same bytes are parsed more than once.
 */
export async function* pieces(bytes: Uint8Array, sizes: readonly number[] = [65536]): AsyncGenerator<Uint8Array> {
  let offset = 0
  for (let index = 0; offset < bytes.length; index++) {
    const size = Math.max(1, sizes[index % sizes.length] ?? 1)
    yield new Uint8Array(bytes.subarray(offset, offset + size))
    offset += size
  }
}

const hex = (bytes: Uint8Array | null): string => (bytes === null ? 'null' : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex'))

/** An event as one line of text, every field included (chunk bytes in full), so sequences compare exactly. */
export function describe(event: IngestEvent): string {
  switch (event.type) {
    case 'directory':
      return `directory ${hex(event.name)}`
    case 'end':
      return 'end'
    case 'file':
      return `file ${hex(event.name)} ${event.executable} ${event.size}`
    case 'chunk':
      return `chunk ${hex(event.digest)} ${hex(event.bytes)}`
    case 'repeat':
      return `repeat ${hex(event.digest)} ${event.size}`
    case 'fileEnd':
      return `fileEnd ${hex(event.digest)}`
    case 'symlink':
      return `symlink ${hex(event.name)} ${hex(event.target)}`
    case 'done':
      return `done ${hex(event.narHash)} ${event.narSize}`
  }
}

export interface Outcome {
  events: string[]
  /** The error the stream ended with, as code / class / message / reason / offset. */
  error: string | undefined
}

export function describeError(error: unknown): string {
  if (error instanceof NarError) return `NarError ${error.code} ${error.status} ${error.reason}@${error.offset}: ${error.message}`
  if (error instanceof NixcasError) return `NixcasError ${error.code} ${error.status}: ${error.message}`
  return `other: ${String(error)}`
}

/** Runs a producer to its end, keeping every event and the error it ended with. */
export async function outcome(events: AsyncIterable<IngestEvent>): Promise<Outcome> {
  const out: Outcome = { events: [], error: undefined }
  try {
    for await (const event of events) out.events.push(describe(event))
  } catch (error) {
    out.error = describeError(error)
  }
  return out
}

/** Waits (polling the workers' own reports, no timing involved) until `ready` holds. */
export async function untilStats(workers: IngestWorkers, ready: (stats: Awaited<ReturnType<IngestWorkers['stats']>>) => boolean): Promise<Awaited<ReturnType<IngestWorkers['stats']>>> {
  for (;;) {
    const stats = await workers.stats()
    if (ready(stats)) return stats
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

export const sum = (values: number[]): number => values.reduce((total, value) => total + value, 0)

function narHeader(size: number): Buffer {
  const string = (text: string): Buffer => {
    const length = Buffer.alloc(8)
    length.writeBigUInt64LE(BigInt(text.length))
    return Buffer.concat([length, Buffer.from(text), Buffer.alloc((8 - (text.length % 8)) % 8)])
  }
  const length = Buffer.alloc(8)
  length.writeBigUInt64LE(BigInt(size))
  return Buffer.concat([...['nix-archive-1', '(', 'type', 'regular', 'contents'].map(string), length])
}

function narTrailer(size: number): Buffer {
  const close = Buffer.alloc(16)
  close.writeBigUInt64LE(1n)
  close.write(')', 8)
  return Buffer.concat([Buffer.alloc((8 - (size % 8)) % 8), close])
}

/**
 * A NAR of one regular file of `size` bytes, made lazily in fresh pieces of `piece` bytes:
 * zeros (every chunk the same, as in a decompression bomb) or distinct pseudo-random bytes.
 * `read` counts the bytes taken from it.
 */
export function lazyFileNar(size: number, contents: 'zeros' | 'random', read = { bytes: 0 }, piece = 64 * 1024): AsyncGenerator<Uint8Array> {
  const block = Buffer.alloc(piece)
  for (let index = 0; index < piece; index += 4) block.writeUInt32LE((Math.imul(index + 1, 0x9e3779b1) ^ 0x5bd1e995) >>> 0, index)
  return (async function* () {
    const header = narHeader(size)
    read.bytes += header.length
    yield header
    for (let sent = 0; sent < size; sent += piece) {
      const part = Buffer.alloc(Math.min(piece, size - sent))
      if (contents === 'random') {
        block.copy(part)
        if (part.length >= 4) part.writeUInt32LE(sent / piece, 0)
      }
      read.bytes += part.length
      yield part
    }
    const trailer = narTrailer(size)
    read.bytes += trailer.length
    yield trailer
  })()
}

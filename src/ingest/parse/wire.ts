import { DIGEST_SIZE } from '../../castore/digest.ts'
import { isJoinedChunk, type ChunkSizes } from '../../castore/chunker.ts'
import type { CodecMethod } from '../../codec/methods.ts'
import type { IngestEvent } from '../events.ts'

/**
 * The messages between the pool (main thread) and an ingest worker, and the encoding of
 * event batches. A batch is one message whose bytes all travel by transfer: no chunk byte
 * is copied by structured clone, and the main thread does no copying at all.
 */

/** Main → worker. Byte counts are totals since the session opened, so no update can be lost or counted twice. */
export type ToWorker =
  | {
      kind: 'open'
      id: number
      method: CodecMethod
      chunkSizes: ChunkSizes | undefined
      maxNarSize: number | undefined
      /** Total event cost the session may produce (see `eventCost`); raised by `credit`. */
      credit: number
      batchBytes: number
      /** Input taken is reported once this much more was taken (or when the main thread waits). */
      ackBytes: number
    }
  /** Body pieces in order, several to a message: a message per 64 KiB socket read cost both threads more than the bytes. */
  | { kind: 'input'; id: number; pieces: Uint8Array[] }
  | { kind: 'end'; id: number }
  /** The main thread has no room to send more input until it hears what was taken. */
  | { kind: 'waiting'; id: number }
  | { kind: 'credit'; id: number; credit: number }
  | { kind: 'cancel'; id: number }
  | { kind: 'stats'; request: number }

export interface WireError {
  code: string
  message: string
  reason?: string
  offset?: number
}

/** Worker → main. `taken` is the total input bytes the session's decoder has taken off its queue. */
export type FromWorker =
  | { kind: 'events'; id: number; batch: WireBatch; taken: number }
  | { kind: 'taken'; id: number; taken: number }
  | { kind: 'error'; id: number; error: WireError; taken: number }
  | { kind: 'stats'; request: number; stats: WorkerStats }

/** What a worker reports about itself: progress counters for tests, benchmarks and metrics. */
export interface WorkerStats {
  threadId: number
  /** Sessions open in the worker (a cancelled one counts until its parse has stopped). */
  sessions: number
  /** Sessions whose parse waits because their consumer has not pulled enough. */
  waitingForCredit: number
  /** NAR bytes decoded (including any a decoder holds), over every session since the worker started. */
  decodedBytes: number
  /** Input bytes queued and not yet taken by a decoder, over every session. */
  queuedInputBytes: number
}

/**
 * The cost of an event against a session's output bound: its bytes plus a fixed overhead,
 * so a NAR of empty files is bounded by event count as one of big files is by bytes.
 */
export const EVENT_OVERHEAD = 64

export function eventCost(event: IngestEvent): number {
  switch (event.type) {
    case 'chunk':
      return EVENT_OVERHEAD + event.bytes.length + event.digest.length
    case 'repeat':
      // Not the bytes it holds (none) but the work it stands for: the bound still paces decoding.
      return EVENT_OVERHEAD + event.size + event.digest.length
    case 'fileEnd':
      return EVENT_OVERHEAD + event.digest.length
    case 'file':
    case 'directory':
      return EVENT_OVERHEAD + (event.name?.length ?? 0)
    case 'symlink':
      return EVENT_OVERHEAD + (event.name?.length ?? 0) + event.target.length
    default:
      return EVENT_OVERHEAD
  }
}

export interface WireBatch {
  /** Records: a type tag then that type's fields, see `BatchWriter.add`. */
  records: Float64Array
  /** Digests, names and targets, referenced by (offset, length). */
  meta: ArrayBuffer
  /** Chunks smaller than OWN_BUFFER, referenced by (offset, length). */
  small: ArrayBuffer
  /** Chunks of at least OWN_BUFFER bytes, one buffer each. */
  chunks: ArrayBuffer[]
}

const Tag = { Directory: 0, End: 1, File: 2, Chunk: 3, FileEnd: 4, Symlink: 5, Done: 6, Repeat: 7 } as const

/**
 * A consumer keeps some bytes of a batch and drops others, and a view keeps its whole
 * buffer alive: so bytes are grouped by how long they are likely kept. Digests and names
 * (kept for manifests and directories) share one buffer that holds nothing else; chunks
 * this large get a buffer each; smaller ones (small files, likely kept together, e.g.
 * inlined) share one. A NAR of many small files costs three buffers per batch, not one per file.
 */
const OWN_BUFFER = 4096
const NULL = -1

/** Byte strings appended into one buffer at `take`. */
class Packer {
  private parts: Uint8Array[] = []
  private bytes = 0

  add(bytes: Uint8Array): number {
    const offset = this.bytes
    this.parts.push(bytes)
    this.bytes += bytes.length
    return offset
  }

  take(): ArrayBuffer {
    const out = Buffer.allocUnsafeSlow(this.bytes)
    let offset = 0
    for (const part of this.parts) {
      out.set(part, offset)
      offset += part.length
    }
    this.parts = []
    this.bytes = 0
    return out.buffer
  }
}

/** Collects events in the worker and packs them into one transferable message. */
export class BatchWriter {
  private records: number[] = []
  private readonly meta = new Packer()
  private readonly small = new Packer()
  private chunks: ArrayBuffer[] = []
  private cost = 0
  private count = 0

  get events(): number {
    return this.count
  }

  /** The cost of the events added since the last `take`. */
  get pendingCost(): number {
    return this.cost
  }

  private name(bytes: Uint8Array | null): number {
    return bytes === null ? NULL : this.meta.add(bytes)
  }

  /** Adds `event` and returns its cost. */
  add(event: IngestEvent): number {
    const cost = eventCost(event)
    this.cost += cost
    this.count++
    const r = this.records
    switch (event.type) {
      case 'directory':
        r.push(Tag.Directory, this.name(event.name), event.name?.length ?? NULL)
        break
      case 'end':
        r.push(Tag.End)
        break
      case 'file':
        r.push(Tag.File, this.name(event.name), event.name?.length ?? NULL, event.executable ? 1 : 0, event.size)
        break
      case 'chunk': {
        const digest = this.meta.add(event.digest)
        if (event.bytes.length >= OWN_BUFFER) {
          // A chunk the chunker joined is moved as it is; any other is a view of decoder
          // output and is copied, so the transfer detaches nothing else.
          let own = event.bytes
          if (!isJoinedChunk(own)) {
            own = Buffer.allocUnsafeSlow(event.bytes.length)
            own.set(event.bytes)
          }
          this.chunks.push(own.buffer as ArrayBuffer)
          r.push(Tag.Chunk, digest, this.chunks.length - 1, 0, own.length)
        } else {
          r.push(Tag.Chunk, digest, NULL, this.small.add(event.bytes), event.bytes.length)
        }
        break
      }
      case 'fileEnd':
        r.push(Tag.FileEnd, this.meta.add(event.digest))
        break
      case 'repeat':
        r.push(Tag.Repeat, this.meta.add(event.digest), event.size)
        break
      case 'symlink':
        r.push(Tag.Symlink, this.name(event.name), event.name?.length ?? NULL, this.meta.add(event.target), event.target.length)
        break
      case 'done':
        r.push(Tag.Done, this.meta.add(event.narHash), event.narHash.length, event.narSize)
        break
    }
    return cost
  }

  /** The batch so far and the buffers to transfer with it; the writer starts empty again. */
  take(): { batch: WireBatch; transfer: ArrayBuffer[] } {
    const batch: WireBatch = { records: Float64Array.from(this.records), meta: this.meta.take(), small: this.small.take(), chunks: this.chunks }
    this.records = []
    this.chunks = []
    this.cost = 0
    this.count = 0
    return { batch, transfer: [batch.records.buffer as ArrayBuffer, batch.meta, batch.small, ...batch.chunks] }
  }
}

/** The events of a batch, as views of its transferred buffers. */
export function readBatch(batch: WireBatch): IngestEvent[] {
  const { records, meta, small, chunks } = batch
  const view = (offset: number, length: number): Buffer => Buffer.from(meta, offset, length)
  const maybe = (offset: number, length: number): Buffer | null => (length === NULL ? null : view(offset, length))
  const events: IngestEvent[] = []
  const field = (index: number): number => records[index] as number
  let i = 0
  while (i < records.length) {
    const tag = field(i)
    switch (tag) {
      case Tag.Directory:
        events.push({ type: 'directory', name: maybe(field(i + 1), field(i + 2)) })
        i += 3
        break
      case Tag.End:
        events.push({ type: 'end' })
        i += 1
        break
      case Tag.File:
        events.push({ type: 'file', name: maybe(field(i + 1), field(i + 2)), executable: field(i + 3) === 1, size: field(i + 4) })
        i += 5
        break
      case Tag.Chunk: {
        const buffer = field(i + 2)
        const bytes = buffer === NULL ? Buffer.from(small, field(i + 3), field(i + 4)) : Buffer.from(chunks[buffer] as ArrayBuffer)
        events.push({ type: 'chunk', digest: view(field(i + 1), DIGEST_SIZE), bytes })
        i += 5
        break
      }
      case Tag.FileEnd:
        events.push({ type: 'fileEnd', digest: view(field(i + 1), DIGEST_SIZE) })
        i += 2
        break
      case Tag.Repeat:
        events.push({ type: 'repeat', digest: view(field(i + 1), DIGEST_SIZE), size: field(i + 2) })
        i += 3
        break
      case Tag.Symlink:
        events.push({ type: 'symlink', name: maybe(field(i + 1), field(i + 2)), target: view(field(i + 3), field(i + 4)) })
        i += 5
        break
      case Tag.Done:
        events.push({ type: 'done', narHash: view(field(i + 1), field(i + 2)), narSize: field(i + 3) })
        i += 4
        break
      default:
        throw new Error(`unknown event tag ${String(tag)} in a batch from an ingest worker`)
    }
  }
  return events
}

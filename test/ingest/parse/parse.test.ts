import { createHash } from 'node:crypto'
import { join } from 'node:path'
import t from 'tap'
import { Chunker, DEFAULT_CHUNK_SIZES, type ChunkSizes } from '../../../src/castore/chunker.ts'
import { digestOf } from '../../../src/castore/digest.ts'
import type { IngestEvent } from '../../../src/ingest/events.ts'
import { parseNarEvents } from '../../../src/ingest/parse/parse.ts'
import { readNar } from '../../../src/nix/nar-reader.ts'
import { newProgress } from '../../../src/codec/input.ts'
import { narOf } from '../../helpers/nar-samples.ts'
import { makeGoldenTrees, tempDir } from '../../helpers/trees.ts'
import { compress, describe, lazyFileNar, outcome, pieces } from './helpers.ts'

const SMALL_CHUNKS: ChunkSizes = { min: 256, avg: 1024, max: 4096 }
const METHODS = ['none', 'xz', 'zstd', 'bzip2'] as const
const MiB = 1024 * 1024

/**
 * What the producer must yield, built the plain way: the reader's events, each file's whole
 * contents cut by one Chunker push, digests computed on the spot.
 */
async function reference(nar: Buffer, sizes: ChunkSizes): Promise<string[]> {
  const out: IngestEvent[] = []
  let contents: Uint8Array[] = []
  let remaining = 0
  const finishFile = (): void => {
    const whole = Buffer.concat(contents)
    const chunker = new Chunker(sizes)
    for (const bytes of [...chunker.push(whole), ...chunker.finish()]) out.push({ type: 'chunk', digest: digestOf(bytes), bytes })
    out.push({ type: 'fileEnd', digest: digestOf(whole) })
  }
  for await (const event of readNar([nar])) {
    if (event.type === 'data') {
      contents.push(Buffer.from(event.bytes))
      remaining -= event.bytes.length
      if (remaining === 0) finishFile()
      continue
    }
    out.push(event)
    if (event.type === 'file') {
      contents = []
      remaining = event.size
      if (remaining === 0) finishFile()
    }
  }
  out.push({ type: 'done', narHash: createHash('sha256').update(nar).digest(), narSize: nar.length })
  return out.map(describe)
}

t.test('events match the reader, the chunker and the digests, whatever the compression and the body pieces', async (t) => {
  const trees = await makeGoldenTrees(join(await tempDir(t), 'golden'))
  for (const [name, path] of Object.entries(trees)) {
    const nar = (await narOf(path)).bytes
    const expected = new Map([DEFAULT_CHUNK_SIZES, SMALL_CHUNKS].map((sizes) => [sizes, reference(nar, sizes)]))
    for (const method of METHODS) {
      // The 5 MB of random bytes only where compressing and decoding them is quick.
      if (nar.length > MiB && (method === 'xz' || method === 'bzip2')) continue
      const body = await compress(nar, method)
      for (const [sizes, events] of expected) {
        const got = await outcome(parseNarEvents(pieces(body, [1, 7, 4096, 65536, 100_000]), { method, chunkSizes: sizes }))
        t.equal(got.error, undefined, `${name} ${method} ${sizes.avg}: no error`)
        t.strictSame(got.events, await events, `${name} ${method} chunks of ${sizes.avg}: same events`)
      }
    }
  }
})

const zeroFileNar = (size: number): AsyncGenerator<Uint8Array> => lazyFileNar(size, 'zeros', undefined, MiB)

t.test('maxNarSize counts decoded bytes as they stream; a declared size past it is refused before its contents', async (t) => {
  const nar = await compress(zeroFileNar(3 * MiB + 5), 'none')
  const exact = await outcome(parseNarEvents(pieces(nar), { method: 'none', maxNarSize: nar.length }))
  t.equal(exact.error, undefined, 'a NAR of exactly the limit passes')

  for (const method of ['none', 'zstd'] as const) {
    const body = await compress(nar, method)
    const progress = newProgress()
    const over = await outcome(parseNarEvents(pieces(body), { method, maxNarSize: nar.length - 1, progress }))
    t.match(over.error, /^NixcasError TOO_LARGE 413: .* larger than the limit of \d+ bytes$/, `${method}: one byte over`)
    t.ok(progress.outputBytes <= nar.length - 1 + MiB, `${method}: decoding stopped at the limit (${progress.outputBytes} bytes)`)

    const declared = newProgress()
    const early = await outcome(parseNarEvents(pieces(body), { method, maxNarSize: MiB, progress: declared }))
    t.equal(early.error, `NixcasError TOO_LARGE 413: the NAR is larger than the limit of ${MiB} bytes`, `${method}: a file declared larger than the limit`)
    t.ok(declared.outputBytes <= MiB, `${method}: refused after ${declared.outputBytes} decoded bytes, not 3 MiB`)
  }

  // Many small files: no declared size is past the limit, the running total is.
  const trees = await makeGoldenTrees(join(await tempDir(t), 'golden'))
  const many = (await narOf(trees['many-small'] as string)).bytes
  const progress = newProgress()
  const limit = Math.floor(many.length / 2)
  const tooMany = await outcome(parseNarEvents(pieces(many, [1000]), { method: 'none', maxNarSize: limit, progress }))
  t.match(tooMany.error, /TOO_LARGE/)
  t.ok(progress.outputBytes <= limit + 1000, `stopped at the limit (${progress.outputBytes} of ${many.length} bytes decoded)`)
})

t.test('bad compressed data is BAD_REQUEST naming the method; a malformed NAR is the reader’s NarError', async (t) => {
  const trees = await makeGoldenTrees(join(await tempDir(t), 'golden'))
  const nar = (await narOf(trees.mixed as string)).bytes
  for (const method of ['xz', 'zstd', 'bzip2'] as const) {
    const garbage = await outcome(parseNarEvents(pieces(Buffer.from('definitely not compressed data')), { method }))
    t.match(garbage.error, new RegExp(`^NixcasError BAD_REQUEST 400: .*${method}`), `${method}: garbage`)
    const compressed = await compress(nar, method)
    const cut = await outcome(parseNarEvents(pieces(compressed.subarray(0, compressed.length - 1)), { method }))
    t.match(cut.error, /^NixcasError BAD_(REQUEST|NAR) 400/, `${method}: missing its last byte`)
  }
  const truncated = await outcome(parseNarEvents(pieces(nar.subarray(0, 100)), { method: 'none' }))
  t.match(truncated.error, /^NarError BAD_NAR 400 truncated@\d+: malformed NAR at byte \d+/)
  const trailing = await outcome(parseNarEvents(pieces(Buffer.concat([nar, Buffer.alloc(8)])), { method: 'none' }))
  t.equal(trailing.error, `NarError BAD_NAR 400 trailing-data@${nar.length}: malformed NAR at byte ${nar.length}: bytes follow the root node`)
  t.strictSame(trailing.events, (await reference(nar, DEFAULT_CHUNK_SIZES)).slice(0, -1), 'every event before the error was yielded')
})

t.test('an aborted signal stops the parse, also while it waits for the body', async (t) => {
  const before = new AbortController()
  before.abort()
  t.equal((await outcome(parseNarEvents(zeroFileNar(1024), { method: 'none', signal: before.signal }))).error, 'NixcasError ABORTED 499: the upload was aborted')

  const controller = new AbortController()
  let release: (() => void) | undefined
  // Half of a file's contents, then nothing: the parse waits inside the file.
  const half = (await compress(zeroFileNar(64 * 1024), 'none')).subarray(0, 32 * 1024)
  async function* stalls(): AsyncGenerator<Uint8Array> {
    yield* pieces(half, [4096])
    await new Promise<void>((resolve) => (release = resolve))
  }
  const progress = newProgress()
  const events = parseNarEvents(stalls(), { method: 'none', signal: controller.signal, progress })
  const first = await events.next()
  t.equal((first.value as IngestEvent).type, 'file')
  const waiting = events.next()
  // Let the parse run until it waits on the body, then abort it there.
  await new Promise((resolve) => setImmediate(resolve))
  controller.abort()
  await t.rejects(waiting, { code: 'ABORTED' })
  t.equal(progress.outputBytes, half.length, 'it had read all there was, and stopped there')
  release?.()
})

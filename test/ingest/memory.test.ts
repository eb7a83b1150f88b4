import { createHash, randomBytes } from 'node:crypto'
import t from 'tap'
import { ingestNar } from '../../src/ingest/ingest.ts'
import { loadLayout } from '../../src/render/load.ts'
import { renderNar } from '../../src/render/render.ts'
import { Cas } from '../../src/cas/cas.ts'
import { FsStore } from '../../src/stores/fs.ts'
import { tempDir } from '../helpers/trees.ts'

// Alone in its file, so the process starts from a clean baseline.
const SIZE = 1024 * 1024 * 1024

function narString(text: string): Buffer {
  const length = Buffer.alloc(8)
  length.writeBigUInt64LE(BigInt(text.length))
  return Buffer.concat([length, Buffer.from(text), Buffer.alloc((8 - (text.length % 8)) % 8)])
}

/** A 1 GB single-file NAR made on the fly from distinct 1 MiB pieces. */
async function* bigNar(sha: ReturnType<typeof createHash>): AsyncGenerator<Uint8Array> {
  const block = randomBytes(1024 * 1024)
  const length = Buffer.alloc(8)
  length.writeBigUInt64LE(BigInt(SIZE))
  const parts = [Buffer.concat([...['nix-archive-1', '(', 'type', 'regular', 'contents'].map(narString), length])]
  for (const part of parts) {
    sha.update(part)
    yield part
  }
  for (let sent = 0; sent < SIZE; sent += block.length) {
    const piece = Buffer.from(block)
    piece.writeUInt32LE(sent / block.length, 0)
    sha.update(piece)
    yield piece
  }
  const close = narString(')')
  sha.update(close)
  yield close
}

t.test('memory stays flat ingesting and rendering a 1 GB NAR', async (t) => {
  const cas = new Cas(new FsStore('disk', { path: await tempDir(t), fsync: false }))
  const before = process.memoryUsage.rss()
  let peak = before
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 10)
  t.teardown(() => clearInterval(timer))

  const sha = createHash('sha256')
  const result = await ingestNar(cas, bigNar(sha))
  t.equal(result.narSize, SIZE + 112)
  t.same(result.narHash.digest, sha.digest(), 'NAR hash computed on the fly')
  const afterIngest = peak

  const rendered = createHash('sha256')
  let size = 0
  for await (const chunk of renderNar(cas, await loadLayout(cas, result.narHash), undefined, { windowBytes: 16 * 1024 * 1024 })) {
    rendered.update(chunk)
    size += chunk.length
  }
  t.equal(size, SIZE + 112)
  t.same(rendered.digest(), result.narHash.digest, 'the rendered NAR has the same hash')
  const grew = (bytes: number): string => `${((bytes - before) / 1048576).toFixed(0)} MiB`
  // What it guards: a quarter of the NAR at most, never the NAR. Growth here is ~170-200 MiB
  // (64 MiB of chunks in flight, a pack, and garbage not yet collected); a tighter bound
  // would fail on a busy machine's noise, not on a leak.
  t.ok(afterIngest - before < SIZE / 4, `RSS grew by ${grew(afterIngest)} during ingest`)
  t.ok(peak - before < SIZE / 4, `and by ${grew(peak)} at most during render`)
})

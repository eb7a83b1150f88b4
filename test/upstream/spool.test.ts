import { randomBytes } from 'node:crypto'
import { open, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { Spool, SpoolFile } from '../../src/cache/upstream/spool.ts'
import { tempDir } from '../helpers/trees.ts'

const MiB = 1024 * 1024

/** Everything `file` holds from `offset` to `end`, read as a reader does (pieces of at most what read returns). */
async function readAll(t: Test, file: SpoolFile, offset: number, end: number): Promise<Buffer> {
  const parts: Uint8Array[] = []
  for (let at = offset; at < end; ) {
    const bytes = await file.read(at, end - at)
    t.ok(bytes.length > 0, 'a read returns bytes')
    parts.push(Buffer.from(bytes))
    at += bytes.length
  }
  return Buffer.concat(parts)
}

t.test('a spool file reads back every byte added, from memory while its writes run behind and from disk after', async (t) => {
  const spool = await Spool.open(await tempDir(t), 64 * MiB)
  const nar = randomBytes(21 * MiB + 12_345)
  const file = await spool.file(nar.length)
  if (file === undefined) throw new Error('the spool has room')
  let added = 0
  // Pieces of uneven sizes, so buffers fill across piece boundaries; reads in between at
  // offsets behind, inside the unwritten buffers and at the newest byte.
  for (let piece = 0; added < nar.length; piece++) {
    const size = Math.min(nar.length - added, 1 + ((piece * 97_531) % (700 * 1024)))
    await file.add(nar.subarray(added, added + size))
    added += size
    if (piece % 7 === 0) {
      for (const offset of [0, Math.floor(added / 3), Math.max(0, added - 3 * MiB - 5), added - 1]) {
        const end = Math.min(added, offset + 2 * MiB + 17)
        t.ok((await readAll(t, file, offset, end)).equals(nar.subarray(offset, end)), `bytes ${offset}–${end} after ${added} added`)
      }
    }
  }
  t.ok((await readAll(t, file, 0, nar.length)).equals(nar), 'the whole NAR reads back')
  await t.rejects(file.add(Buffer.alloc(1)), { code: 'INTERNAL' }, 'a byte past its size is refused')
  await file.free()
  t.equal(spool.budget.inUse, 0, 'its room is given back')
  t.same(await readdir(spool.dir), [], 'nothing is left on disk')
})

t.test('a spool file takes pieces too small and many for one writev (more than IOV_MAX per write)', async (t) => {
  const spool = await Spool.open(await tempDir(t), 8 * MiB)
  const nar = randomBytes(3 * MiB + 333)
  const file = await spool.file(nar.length)
  if (file === undefined) throw new Error('the spool has room')
  for (let added = 0; added < nar.length; added += 100) await file.add(nar.subarray(added, Math.min(nar.length, added + 100)))
  await file.flush()
  const read = await readAll(t, file, 0, nar.length)
  t.ok(read.equals(nar), 'every byte is in the file, in order')
  await file.free()
})

t.test('a spool file whose writes fail fails the download and its readers, not later with wrong bytes', async (t) => {
  const dir = await tempDir(t)
  const path = join(dir, 'read-only')
  await writeFile(path, '')
  // Opened for reading only: every write fails (EBADF), as a disk that errors would.
  const handle = await open(path, 'r')
  let released = 0
  const file = new SpoolFile(handle, 40 * MiB, () => released++)
  const piece = randomBytes(MiB)
  let failure: unknown
  for (let added = 0; added < 40 * MiB && failure === undefined; added += piece.length) {
    await file.add(piece).catch((error: unknown) => (failure = error))
  }
  t.ok(failure, 'an add after the failed write throws')
  t.match(String((failure as NodeJS.ErrnoException).code), /EBADF/)
  await t.rejects(file.read(0, 10), 'a read throws too')
  await file.free()
  t.equal(released, 1, 'its room is given back once')
})

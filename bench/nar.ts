/**
 * NAR reader and writer throughput beside `nix-store --dump` of the same tree, in one run.
 *   npm run bench -- nar
 */
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { createWriteStream } from 'node:fs'
import { Readable } from 'node:stream'
import { dumpPath } from '../src/fs/dump-path.ts'
import { readNar } from '../src/nix/nar-reader.ts'
import { writeNar } from '../src/nix/nar-writer.ts'
import { MB, best, countOutput, hasCommand, makeBenchTree, report } from './lib.ts'

export async function benchNar(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'nixcas-bench-nar-'))
  try {
    const tree = join(dir, 'tree')
    await makeBenchTree(tree)
    const narFile = join(dir, 'tree.nar')
    await pipeline(Readable.from(writeNar(dumpPath(tree))), createWriteStream(narFile))

    let size = 0
    const runs = 5
    const write = await best(runs, async () => {
      size = 0
      for await (const chunk of writeNar(dumpPath(tree))) size += chunk.length
    })
    const writeHash = await best(runs, async () => {
      const hash = createHash('sha256')
      for await (const chunk of writeNar(dumpPath(tree))) hash.update(chunk)
    })
    const read = await best(runs, async () => {
      for await (const event of readNar(createReadStream(narFile, { highWaterMark: 1024 * 1024 }))) void event
    })
    const roundTrip = await best(runs, async () => {
      for await (const chunk of writeNar(readNar(createReadStream(narFile, { highWaterMark: 1024 * 1024 })))) void chunk
    })
    const rows: Record<string, string | number>[] = [
      { what: 'writer: tree → NAR', 'MB/s': Math.round(size / MB / write) },
      { what: 'writer + sha256', 'MB/s': Math.round(size / MB / writeHash) },
      { what: 'reader: NAR file → events', 'MB/s': Math.round(size / MB / read) },
      { what: 'reader → writer', 'MB/s': Math.round(size / MB / roundTrip) },
    ]
    if (hasCommand('nix-store')) {
      const dump = await best(runs, () => countOutput('nix-store', ['--dump', tree]))
      rows.push({ what: 'nix-store --dump (to a pipe)', 'MB/s': Math.round(size / MB / dump) })
      for (const row of rows) row['× nix-store --dump'] = (Number(row['MB/s']) / (size / MB / dump)).toFixed(2)
    } else {
      rows.push({ what: 'nix-store --dump', 'MB/s': 'nix not installed' })
    }
    console.log(`NAR of ${(size / MB).toFixed(1)} MB, 4 large files and 4,000 small ones; best of ${runs}`)
    report(rows)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

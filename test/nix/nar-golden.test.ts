import { createHash } from 'node:crypto'
import t from 'tap'
import { dumpPath } from '../../src/fs/dump-path.ts'
import { readNar } from '../../src/nix/nar-reader.ts'
import { writeNar } from '../../src/nix/nar-writer.ts'
import { encodeNixbase32 } from '../../src/nix/nixbase32.ts'
import { nix, nixText, skipWithoutNix } from '../helpers/nix.ts'
import { collect, slices } from '../helpers/streams.ts'
import { makeGoldenTrees, tempDir } from '../helpers/trees.ts'

t.test('our NAR writer matches nix-store --dump byte for byte', { skip: skipWithoutNix }, async (t) => {
  const trees = await makeGoldenTrees(await tempDir(t))
  for (const [name, path] of Object.entries(trees)) {
    const ours = await collect(writeNar(dumpPath(path)))
    const theirs = await nix('nix-store', ['--dump', path])
    t.ok(ours.equals(theirs), `${name}: identical bytes (${ours.length} vs ${theirs.length})`)
    const hash = encodeNixbase32(createHash('sha256').update(ours).digest())
    t.equal(hash, await nixText('nix', ['hash', 'path', '--base32', path]), `${name}: sha256 matches nix hash path`)

    // Reader → writer round trip, with the NAR cut at awkward sizes.
    const roundTrip = await collect(writeNar(readNar(slices(theirs, [1, 7, 8, 9, 4096, 3]))))
    t.ok(roundTrip.equals(theirs), `${name}: reader → writer round trip is identical`)
  }
})

import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { encode } from '../../src/codec/encode.ts'
import { narSuffix, type CodecMethod } from '../../src/codec/methods.ts'
import { collect } from '../helpers/streams.ts'
import { nix, nixText, skipWithoutNix } from '../helpers/nix.ts'
import { sampleData, source } from './tools.ts'

/**
 * Nix itself decodes what encode() writes: a file:// binary cache whose NAR is replaced by
 * ours in each method, read back with `nix store cat` (liblzma, libzstd, libbrotli, libarchive).
 */
t.test('the real Nix client decodes every method encode() writes', { skip: skipWithoutNix }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'nixcas-codec-nix-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const content = sampleData(350_000) // several bzip2 blocks at the default level
  await writeFile(join(dir, 'payload'), content)
  const storePath = await nixText('nix-store', ['--add', join(dir, 'payload')])
  const cache = join(dir, 'cache')
  await nix('nix', ['copy', '--to', `file://${cache}?compression=none`, storePath])
  const hashPart = storePath.slice('/nix/store/'.length, '/nix/store/'.length + 32)
  const narinfoPath = join(cache, `${hashPart}.narinfo`)
  const narinfo = await readFile(narinfoPath, 'utf8')
  const url = /^URL: (.*)$/m.exec(narinfo)?.[1] as string
  const nar = await readFile(join(cache, url))

  const methods: CodecMethod[] = ['xz', 'zstd', 'bzip2', 'br', 'gzip']
  for (const method of methods) {
    const name = `nar/ours-${method}${narSuffix(method) ?? '.nar'}`
    await writeFile(join(cache, name), await collect(encode(source(nar), method)))
    const lines = narinfo
      .split('\n')
      .filter((line) => !/^(FileHash|FileSize):/.test(line))
      .map((line) => (line.startsWith('URL: ') ? `URL: ${name}` : line.startsWith('Compression: ') ? `Compression: ${method}` : line))
    await writeFile(narinfoPath, lines.join('\n'))
    const read = await nix('nix', ['store', 'cat', '--store', `file://${cache}`, storePath])
    t.ok(read.equals(content), `${method}: nix store cat gives the content back`)
  }
})

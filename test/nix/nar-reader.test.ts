import fc from 'fast-check'
import t, { type Test } from 'tap'
import { NarError, type NarErrorReason, type NarEvent } from '../../src/nix/nar-format.ts'
import { readNar } from '../../src/nix/nar-reader.ts'
import { writeNar } from '../../src/nix/nar-writer.ts'
import { collect, collectAll, slices } from '../helpers/streams.ts'

// An independent NAR builder for hand-made (and hand-broken) archives.
function str(value: string | Uint8Array, pad = 0): Buffer {
  const body = typeof value === 'string' ? Buffer.from(value) : Buffer.from(value)
  const length = Buffer.alloc(8)
  length.writeBigUInt64LE(BigInt(body.length))
  const padBytes = Buffer.alloc((8 - (body.length % 8)) % 8, pad)
  return Buffer.concat([length, body, padBytes])
}
const nar = (...parts: (string | Buffer)[]): Buffer => Buffer.concat(parts.map((part) => (typeof part === 'string' ? str(part) : part)))
const regular = (contents: string): Buffer => nar('(', 'type', 'regular', 'contents', contents, ')')
const entry = (name: string | Buffer, node: Buffer): Buffer => nar('entry', '(', 'name', typeof name === 'string' ? name : str(name), 'node', node, ')')
const directory = (...entries: Buffer[]): Buffer => nar('(', 'type', 'directory', ...entries, ')')
const archive = (root: Buffer): Buffer => nar('nix-archive-1', root)

async function refusal(t: Test, bytes: Buffer, reason: NarErrorReason, offset?: number): Promise<void> {
  const error = await collectAll(readNar([bytes])).then(
    () => null,
    (caught: unknown) => caught,
  )
  t.type(error, NarError, `refused as ${reason}`)
  if (error instanceof NarError) {
    t.equal(error.reason, reason, error.message)
    t.equal(error.code, 'BAD_NAR')
    if (offset !== undefined) t.equal(error.offset, offset, 'reports the offset')
  }
}

t.test('a well-formed NAR reads into events', async (t) => {
  const bytes = archive(directory(entry('a', regular('hello')), entry('b', nar('(', 'type', 'symlink', 'target', 'a', ')'))))
  const events = await collectAll(readNar(slices(bytes, [3])))
  t.same(
    events.map((event) => event.type),
    ['directory', 'file', 'data', 'data', 'symlink', 'end'],
  )
  t.ok((await collect(writeNar(events))).equals(bytes))
})

t.test('each malformed variant is refused with its own reason', async (t) => {
  const good = regular('x')
  await refusal(t, nar('nix-archive-2', good), 'bad-magic', 0)
  await refusal(t, Buffer.from('this is not a NAR archive, just text'), 'bad-magic', 0)
  await refusal(t, Buffer.alloc(0), 'truncated', 0)
  await refusal(t, nar(str('nix-archive-1'), str('(', 1), 'type', 'regular', 'contents', 'x', ')'), 'bad-padding', 33)
  await refusal(t, archive(nar('(', 'type', 'regular', 'contents', str('x', 7), ')')), 'bad-padding')
  await refusal(t, archive(nar('(', 'type', 'fifo', ')')), 'bad-node-type')
  await refusal(t, archive(nar('(', 'kind', 'regular', ')')), 'unexpected-token')
  await refusal(t, archive(nar('(', 'type', 'regular', 'executable', 'yes', 'contents', 'x', ')')), 'unexpected-token')
  await refusal(t, archive(nar('(', 'type', 'regular', 'content', 'x', ')')), 'unexpected-token')
  await refusal(t, archive(directory(entry('', good))), 'bad-name')
  await refusal(t, archive(directory(entry('.', good))), 'bad-name')
  await refusal(t, archive(directory(entry('..', good))), 'bad-name')
  await refusal(t, archive(directory(entry('a/b', good))), 'bad-name')
  await refusal(t, archive(directory(entry(Buffer.from('a\0b'), good))), 'bad-name')
  await refusal(t, archive(directory(entry('n'.repeat(256), good))), 'name-too-long')
  await refusal(t, archive(directory(entry('b', good), entry('a', good))), 'unsorted-entries')
  await refusal(t, archive(directory(entry('a', good), entry('a', good))), 'duplicate-entry')
  await refusal(t, archive(nar('(', 'type', 'symlink', 'target', '', ')')), 'bad-symlink-target')
  await refusal(t, archive(nar('(', 'type', 'symlink', 'target', str(Buffer.from('a\0')), ')')), 'bad-symlink-target')
  await refusal(t, archive(nar('(', 'type', 'symlink', 'target', 't'.repeat(4096), ')')), 'target-too-long')
  await refusal(t, Buffer.concat([archive(good), str('x')]), 'trailing-data')
  await refusal(t, archive(good).subarray(0, 60), 'truncated')
  await refusal(t, archive(directory(entry('a', good))).subarray(0, -8), 'truncated')

  // A length that cannot fit is refused before anything is allocated.
  const huge = Buffer.alloc(8, 0xff)
  await refusal(t, Buffer.concat([str('nix-archive-1'), str('('), str('type'), str('regular'), str('contents'), huge]), 'length-too-large')
  await refusal(t, Buffer.concat([str('nix-archive-1'), str('('), str('type'), str('directory'), str('entry'), str('('), str('name'), huge]), 'name-too-long')
  await refusal(t, Buffer.concat([str('nix-archive-1'), huge, Buffer.alloc(64)]), 'length-too-large')
})

t.test('deeply nested directories need no recursion', async (t) => {
  let node = regular('leaf')
  for (let depth = 0; depth < 5000; depth++) node = directory(entry('d', node))
  const bytes = archive(node)
  const rewritten = await collect(writeNar(readNar([bytes])))
  t.ok(rewritten.equals(bytes))
})

t.test('the writer refuses events that cannot form a canonical NAR', async (t) => {
  const name = (text: string): Uint8Array => Buffer.from(text)
  const cases: [string, NarEvent[], NarErrorReason][] = [
    ['unsorted', [{ type: 'directory', name: null }, { type: 'symlink', name: name('b'), target: name('x') }, { type: 'symlink', name: name('a'), target: name('x') }, { type: 'end' }], 'unsorted-entries'],
    ['short file', [{ type: 'file', name: null, executable: false, size: 4 }, { type: 'data', bytes: name('ab') }], 'bad-event-order'],
    ['long file', [{ type: 'file', name: null, executable: false, size: 1 }, { type: 'data', bytes: name('ab') }], 'bad-event-order'],
    ['two roots', [{ type: 'symlink', name: null, target: name('x') }, { type: 'symlink', name: null, target: name('x') }], 'bad-event-order'],
    ['unclosed', [{ type: 'directory', name: null }], 'bad-event-order'],
    ['bad name', [{ type: 'directory', name: null }, { type: 'symlink', name: name('..'), target: name('x') }, { type: 'end' }], 'bad-name'],
  ]
  for (const [label, events, reason] of cases) {
    const error = await collect(writeNar(events)).then(
      () => null,
      (caught: unknown) => caught,
    )
    t.equal(error instanceof NarError ? error.reason : error, reason, label)
  }
})

// Random trees, as event lists, for the property test.
const nameArb = fc
  .uint8Array({ minLength: 1, maxLength: 12 })
  .map((bytes) => Buffer.from(bytes.map((byte) => (byte === 0 || byte === 0x2f ? 0x61 : byte))))
  .filter((name) => name.toString('latin1') !== '.' && name.toString('latin1') !== '..')

type Tree = { kind: 'file'; executable: boolean; contents: Uint8Array } | { kind: 'symlink'; target: Uint8Array } | { kind: 'dir'; entries: [Buffer, Tree][] }

const treeArb: fc.Arbitrary<Tree> = fc.letrec<{ tree: Tree }>((tie) => ({
  tree: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.record({ kind: fc.constant('file' as const), executable: fc.boolean(), contents: fc.uint8Array({ maxLength: 300 }) }),
    fc.record({ kind: fc.constant('symlink' as const), target: fc.uint8Array({ minLength: 1, maxLength: 40 }).map((bytes) => bytes.map((byte) => byte || 1)) }),
    fc.record({
      kind: fc.constant('dir' as const),
      entries: fc.uniqueArray(fc.tuple(nameArb, tie('tree')), { maxLength: 5, selector: ([name]) => name.toString('latin1') }).map((entries) => entries.sort(([a], [b]) => Buffer.compare(a, b))),
    }),
  ),
})).tree

function* treeEvents(tree: Tree, name: Uint8Array | null): Generator<NarEvent> {
  if (tree.kind === 'file') {
    yield { type: 'file', name, executable: tree.executable, size: tree.contents.length }
    if (tree.contents.length > 0) yield { type: 'data', bytes: tree.contents }
  } else if (tree.kind === 'symlink') {
    yield { type: 'symlink', name, target: tree.target }
  } else {
    yield { type: 'directory', name }
    for (const [entryName, child] of tree.entries) yield* treeEvents(child, entryName)
    yield { type: 'end' }
  }
}

t.test('random trees: writer → reader → writer is byte-identical', async (t) => {
  await fc.assert(
    fc.asyncProperty(treeArb, fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 5 }), async (tree, cuts) => {
      const bytes = await collect(writeNar(treeEvents(tree, null)))
      const again = await collect(writeNar(readNar(slices(bytes, cuts))))
      return again.equals(bytes)
    }),
    { numRuns: 300 },
  )
  t.pass('300 random trees round-tripped')
})

t.test('memory stays flat reading and writing a 1 GB NAR', async (t) => {
  const size = 1024 * 1024 * 1024
  const block = Buffer.alloc(1024 * 1024, 0x5a)
  async function* source(): AsyncGenerator<Uint8Array> {
    yield Buffer.concat([str('nix-archive-1'), str('('), str('type'), str('regular'), str('contents')])
    const length = Buffer.alloc(8)
    length.writeBigUInt64LE(BigInt(size))
    yield length
    for (let sent = 0; sent < size; sent += block.length) yield block
    yield str(')')
  }
  const before = process.memoryUsage().rss
  let peak = before
  let written = 0
  for await (const chunk of writeNar(readNar(source()))) {
    written += chunk.length
    peak = Math.max(peak, process.memoryUsage.rss())
  }
  t.equal(written, 24 + 4 * 16 + 8 + size + 16, 'every byte came through')
  t.ok(peak - before < 64 * 1024 * 1024, `RSS grew by ${((peak - before) / 1048576).toFixed(1)} MiB`)
})

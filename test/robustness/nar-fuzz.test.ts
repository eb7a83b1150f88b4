import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import fc from 'fast-check'
import t from 'tap'
import { narString } from '../../src/nix/nar-format.ts'
import { readNar } from '../../src/nix/nar-reader.ts'
import { writeNar } from '../../src/nix/nar-writer.ts'
import { encodeNixbase32 } from '../../src/nix/nixbase32.ts'
import { collect } from '../helpers/streams.ts'
import { eventsOf, narBytes, tree } from '../helpers/synthetic-nars.ts'
import { listen } from './server.ts'

/**
 * Structured mutations of valid NARs, and of their compressed forms, uploaded to a real
 * server: none is wrongly accepted (the server accepts exactly what a strict reader takes
 * for a canonical NAR, and serves it back byte for byte), nothing refused becomes visible,
 * and nothing answers 5xx.
 */

/** Changes to a NAR along its grammar: its strings and u64 lengths sit on an 8-byte grid. */
type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'length'; word: number; value: number }
  | { kind: 'insert'; word: number; bytes: Uint8Array }
  | { kind: 'delete'; word: number; words: number }
  | { kind: 'duplicate'; word: number; words: number }
  | { kind: 'swap'; a: number; b: number }
  | { kind: 'append'; bytes: Uint8Array }

const TOKENS = ['(', ')', 'type', 'regular', 'directory', 'symlink', 'entry', 'name', 'node', 'contents', 'executable', 'target', '', 'nix-archive-1']

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('length' as const), word: fc.nat(), value: fc.constantFrom(0, 1, 7, 8, 9, 16, 255, 256, 4095, 4096, 2 ** 32, 2 ** 53 - 1) }),
  fc.record({
    kind: fc.constant('insert' as const),
    word: fc.nat(),
    bytes: fc.oneof(fc.constantFrom(...TOKENS).map((token) => narString(token)), fc.uint8Array({ minLength: 8, maxLength: 8 }), fc.constant(new Uint8Array(8))),
  }),
  fc.record({ kind: fc.constant('delete' as const), word: fc.nat(), words: fc.integer({ min: 1, max: 6 }) }),
  fc.record({ kind: fc.constant('duplicate' as const), word: fc.nat(), words: fc.integer({ min: 1, max: 12 }) }),
  fc.record({ kind: fc.constant('swap' as const), a: fc.nat(), b: fc.nat() }),
  fc.record({ kind: fc.constant('append' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 24 }) }),
)

function mutate(input: Buffer, change: Mutation): Buffer {
  const bytes = Buffer.from(input)
  const words = Math.max(1, bytes.length >> 3)
  const word = (index: number): number => (index % words) * 8
  switch (change.kind) {
    case 'flip':
      bytes[change.at % bytes.length] = (bytes[change.at % bytes.length] as number) ^ (1 << change.bit)
      return bytes
    case 'truncate':
      return bytes.subarray(0, change.at % bytes.length)
    case 'length': {
      const at = word(change.word)
      if (at + 8 <= bytes.length) bytes.writeBigUInt64LE(BigInt(change.value), at)
      return bytes
    }
    case 'insert':
      return Buffer.concat([bytes.subarray(0, word(change.word)), change.bytes, bytes.subarray(word(change.word))])
    case 'delete':
      return Buffer.concat([bytes.subarray(0, word(change.word)), bytes.subarray(word(change.word) + change.words * 8)])
    case 'duplicate': {
      const at = word(change.word)
      return Buffer.concat([bytes.subarray(0, at + change.words * 8), bytes.subarray(at)])
    }
    case 'swap': {
      const [a, b] = [word(change.a), word(change.b)]
      if (a + 8 > bytes.length || b + 8 > bytes.length) return bytes
      const first = Buffer.from(bytes.subarray(a, a + 8))
      bytes.copy(bytes, a, b, b + 8)
      first.copy(bytes, b)
      return bytes
    }
    case 'append':
      return Buffer.concat([bytes, change.bytes])
  }
}

const sha256 = (bytes: Uint8Array): string => encodeNixbase32(createHash('sha256').update(bytes).digest())

/** Whether the strict reader takes `bytes` for a NAR in the one canonical form (it writes it back identically). */
async function canonical(bytes: Buffer): Promise<boolean> {
  try {
    return (await collect(writeNar(readNar([bytes])))).equals(bytes)
  } catch {
    return false
  }
}

const COMPRESSORS = {
  xz: { suffix: 'nar.xz', compress: ['xz', '-c'], decompress: ['xz', '-dc'] },
  zstd: { suffix: 'nar.zst', compress: ['zstd', '-c', '-q'], decompress: ['zstd', '-dc', '-q'] },
  bzip2: { suffix: 'nar.bz2', compress: ['bzip2', '-c'], decompress: ['bzip2', '-dc'] },
} as const

/**
 * What a real CLI makes of `input`: its output, or undefined when it refuses. bzip2 only
 * warns about bytes after its last stream; nixcas refuses them, as xz and zstd do, so the
 * warning counts as a refusal here.
 */
function run(command: readonly string[], input: Uint8Array): Buffer | undefined {
  const result = spawnSync(command[0] as string, command.slice(1), { input, maxBuffer: 64 * 1024 * 1024 })
  return result.status === 0 && !result.stderr.toString().includes('trailing garbage') ? result.stdout : undefined
}

t.test('structured mutations of NARs and of their compressed forms', async (t) => {
  const server = await listen(t, { maxNarSize: 1024 * 1024 })
  const accepted = new Set<string>()

  /**
   * Uploads `body` as `file`; `nar` is what it decodes to (undefined when a reference decoder
   * refuses it). Throws what went wrong, so fast-check's report (and its shrunk case) says it.
   */
  async function check(file: string, body: Buffer, nar: Buffer | undefined, what: string, compressed = false): Promise<void> {
    const fail = (problem: string): never => {
      throw new Error(`${what}: ${problem}`)
    }
    const response = await fetch(`${server.url}/nar/${file}`, { method: 'PUT', body })
    const answer = await response.text()
    const valid = nar !== undefined && (await canonical(nar))
    if (response.status === 201) {
      if (!valid || nar === undefined) return fail(`accepted, but it is not a canonical NAR: ${answer}`)
      const served = await fetch(`${server.url}/nar/${sha256(nar)}.nar`)
      if (!Buffer.from(await served.arrayBuffer()).equals(nar)) fail(`accepted, but not served back byte for byte (${served.status})`)
      accepted.add(sha256(nar))
      return
    }
    if (response.status < 400 || response.status >= 500) fail(`${response.status} ${answer}`)
    // A damaged compressed stream that the reference tool still decodes may be refused by a
    // stricter decoder (another libzstd's checks, bzip2 0.9.0's randomised blocks): refusing
    // damaged input is safe. A NAR sent as is, canonical, must always be taken.
    const decoderRefused = compressed && /is not valid \w+ data/.test(answer)
    if (valid && !decoderRefused) fail(`a canonical NAR refused: ${response.status} ${answer}`)
    if (nar !== undefined && !accepted.has(sha256(nar))) {
      const served = await fetch(`${server.url}/nar/${sha256(nar)}.nar`)
      if (served.status !== 404) fail(`refused (${response.status} ${answer}), yet served: ${served.status}`)
    }
  }

  await fc.assert(
    fc.asyncProperty(tree, fc.array(mutation, { minLength: 1, maxLength: 3 }), async (root, changes) => {
      const original = (await narBytes(eventsOf(root))).bytes
      const mutated = changes.reduce(mutate, original)
      await check('fuzz.nar', mutated, mutated, `NAR ${JSON.stringify(changes)}`)
    }),
    { numRuns: 400 },
  )

  // Compressed forms: a few NARs compressed once by the real tools, their streams mutated.
  const bases = fc.sample(tree, { numRuns: 4, seed: 42 })
  for (const [method, tools] of Object.entries(COMPRESSORS)) {
    const streams = await Promise.all(bases.map(async (root) => run(tools.compress, (await narBytes(eventsOf(root))).bytes) as Buffer))
    await fc.assert(
      fc.asyncProperty(fc.nat(streams.length - 1), fc.array(mutation, { minLength: 1, maxLength: 2 }), async (index, changes) => {
        const mutated = changes.reduce(mutate, streams[index] as Buffer)
        await check(`fuzz.${tools.suffix}`, mutated, run(tools.decompress, mutated), `${method} ${JSON.stringify(changes)}`, true)
      }),
      { numRuns: 120 },
    )
  }
  t.pass('none wrongly accepted, none refused yet visible, no 5xx')
  t.ok(accepted.size > 0, `${accepted.size} mutations still canonical NARs were accepted and served`)
  t.equal((await fetch(`${server.url}/health`)).status, 200, 'the server is healthy')
})

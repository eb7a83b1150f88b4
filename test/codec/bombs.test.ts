import { spawn } from 'node:child_process'
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { decode } from '../../src/codec/decode.ts'
import { encode } from '../../src/codec/encode.ts'
import { newProgress, type CodecProgress } from '../../src/codec/input.ts'
import type { CodecMethod } from '../../src/codec/methods.ts'
import { isNixcasError } from '../../src/errors.ts'
import { collect } from '../helpers/streams.ts'
import { run, sampleData, skipWithout, source } from './tools.ts'

const MiB = 1024 * 1024
const BOMB_SIZE = 256 * MiB
/** The most a decoder may produce in one step beyond what was asked (xz: ~1.8 MiB per slice). */
const STEP_SLACK = 4 * MiB

/** 256 MiB of zeros through a real compressor, never held uncompressed. */
function cliBomb(command: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', `head -c ${BOMB_SIZE} /dev/zero | ${command}`], { stdio: ['ignore', 'pipe', 'inherit'] })
    const out: Buffer[] = []
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk))
    child.on('error', reject)
    child.on('close', (code) => (code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`${command} exited ${code}`))))
  })
}

async function* zeros(total: number): AsyncGenerator<Uint8Array> {
  const block = new Uint8Array(MiB)
  for (let sent = 0; sent < total; sent += MiB) yield block
}

const BOMBS: Record<Exclude<CodecMethod, 'none'>, () => Promise<Buffer>> = {
  xz: () => cliBomb('xz -c -1'),
  zstd: () => cliBomb('zstd -c -q'),
  bzip2: () => cliBomb('bzip2 -c -9'),
  gzip: () => cliBomb('gzip -c -1'),
  deflate: () => collect(encode(zeros(BOMB_SIZE), 'deflate', { level: 9 })),
  br: () => collect(encode(zeros(BOMB_SIZE), 'br', { level: 5 })),
}
/** Decoders driven in synchronous steps: nothing at all runs while the consumer waits. */
const STEPPED = new Set<CodecMethod>(['xz', 'zstd', 'bzip2'])

/** Waits until the counters stop moving (node:zlib may finish the buffer it was filling). */
async function settled(progress: CodecProgress): Promise<CodecProgress> {
  let last = { ...progress }
  for (let round = 0; round < 200; round++) {
    await sleep(10)
    if (progress.inputBytes === last.inputBytes && progress.outputBytes === last.outputBytes) return last
    last = { ...progress }
  }
  return last
}

for (const method of Object.keys(BOMBS) as Exclude<CodecMethod, 'none'>[]) {
  t.test(`${method} bomb of 256 MiB of zeros`, { skip: skipWithout(method) }, async (t) => {
    const bomb = await BOMBS[method]()
    t.ok(bomb.length < BOMB_SIZE / 200, `${bomb.length} bytes compressed`)

    const limited = newProgress()
    let failure: unknown
    try {
      for await (const piece of decode(source(bomb), method, { maxOutputBytes: 8 * MiB, progress: limited })) void piece
    } catch (error) {
      failure = error
    }
    t.ok(isNixcasError(failure, 'TOO_LARGE'), 'maxOutputBytes 8 MiB: TOO_LARGE')
    t.ok(limited.outputBytes <= 8 * MiB + STEP_SLACK, `stopped right after the limit: ${limited.outputBytes} bytes decoded`)

    // A consumer that stops after 1 MiB: the decoder must stop too.
    let pulled = 0
    const counted = (async function* () {
      for await (const chunk of source(bomb, [4096])) {
        pulled += chunk.length
        yield chunk
      }
    })()
    const progress = newProgress()
    const pieces = decode(counted, method, { progress })
    let taken = 0
    while (taken < MiB) {
      const next = await pieces.next()
      if (next.done) break
      taken += next.value.length
    }
    const first = STEPPED.has(method) ? { ...progress } : await settled(progress)
    const pulledThen = pulled
    for (let turn = 0; turn < 50; turn++) await nextTurn()
    await sleep(50)
    t.same({ ...progress }, first, 'no byte decoded or read while the consumer waits')
    t.equal(pulled, pulledThen, 'no input pulled from the source while the consumer waits')
    t.ok(first.outputBytes <= MiB + STEP_SLACK, `decoded ${first.outputBytes} bytes for a consumer that took ${taken}`)
    await pieces.return(undefined)
  })
}

t.test('abort ends a decode with the signal\'s reason, also while the source is silent', async (t) => {
  const bomb = await collect(encode(zeros(64 * MiB), 'zstd'))
  const controller = new AbortController()
  const pieces = decode(source(bomb, [1024]), 'zstd', { signal: controller.signal })
  await pieces.next()
  const reason = new Error('the client went away')
  controller.abort(reason)
  await t.rejects(pieces.next(), reason, 'the next pull rejects with the reason')

  const silent = new AbortController()
  const stalled = (async function* () {
    yield (await collect(encode(source(sampleData(10_000)), 'xz'))).subarray(0, 100)
    await new Promise(() => undefined) // a client that stops sending
  })()
  const waiting = decode(stalled, 'xz', { signal: silent.signal })
  const pending = waiting.next()
  setImmediate(() => silent.abort(reason))
  await t.rejects(pending, reason, 'a pull waiting for input rejects when the signal aborts')

  const before = new AbortController()
  before.abort(reason)
  await t.rejects(collect(decode(source(bomb), 'zstd', { signal: before.signal })), reason, 'an already aborted signal')
  await t.rejects(collect(encode(source(bomb), 'xz', { signal: before.signal })), reason, 'encode too')
})

t.test('streams that need more memory than the limit are refused', { skip: skipWithout('xz') || skipWithout('zstd') }, async (t) => {
  const data = sampleData(100_000)
  const xz = await run(['xz', '-c', '-6'], data) // an 8 MiB dictionary
  await t.rejects(collect(decode(source(xz), 'xz', { memoryLimitBytes: MiB })), { code: 'BAD_REQUEST', message: /not valid xz data: .*memory/ })
  t.ok((await collect(decode(source(xz), 'xz', { memoryLimitBytes: 16 * MiB }))).equals(data), 'within the limit it decodes')
  const zstd = await run(['zstd', '-c', '-q', '--long=27'], data) // from stdin: a 128 MiB window
  await t.rejects(collect(decode(source(zstd), 'zstd', { memoryLimitBytes: 16 * MiB })), { code: 'BAD_REQUEST', message: /not valid zstd data/ })
  t.ok((await collect(decode(source(zstd), 'zstd'))).equals(data), 'the default limit allows zstd\'s own default window limit')
})

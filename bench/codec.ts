/**
 * Decoders against compression bombs (peak RSS growth, MB/s) and codec throughput on a
 * real NAR, decode and encode, for every method.
 *   npm run bench -- codec
 * NIXCAS_BENCH_XZ_BOMB_GIB (default 20) sizes the xz bomb; the zstd and bzip2 bombs are 2 GiB.
 */
import { spawn } from 'node:child_process'
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { decode } from '../src/codec/decode.ts'
import { encode } from '../src/codec/encode.ts'
import type { CodecMethod } from '../src/codec/methods.ts'
import { dumpPath } from '../src/fs/dump-path.ts'
import { writeNar } from '../src/nix/nar-writer.ts'
import { MB, hasCommand, makeBenchTree, report } from './lib.ts'
import { machineLine, writeResultSection } from './results.ts'

const GiB = 2 ** 30

/** Runs `sh -c script`, failing on a non-zero exit. */
function sh(script: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', script], { stdio: ['ignore', 'inherit', 'inherit'] })
    child.on('error', reject)
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${script} exited with ${code}`))))
  })
}

interface Measure {
  outputBytes: number
  seconds: number
  cpuSeconds: number
  rssGrowth: number
}

/** Drains `pieces`, sampling RSS between pieces and on a timer; growth is against the start. */
async function measure(pieces: AsyncIterable<Uint8Array>): Promise<Measure> {
  ;(globalThis as { gc?: () => void }).gc?.()
  const baseline = process.memoryUsage.rss()
  let peak = baseline
  const sample = (): void => {
    peak = Math.max(peak, process.memoryUsage.rss())
  }
  const timer = setInterval(sample, 20)
  const start = process.hrtime.bigint()
  const cpu = process.cpuUsage()
  let outputBytes = 0
  let count = 0
  try {
    for await (const piece of pieces) {
      outputBytes += piece.length
      if (++count % 16 === 0) sample()
    }
  } finally {
    clearInterval(timer)
  }
  sample()
  const used = process.cpuUsage(cpu)
  return { outputBytes, seconds: Number(process.hrtime.bigint() - start) / 1e9, cpuSeconds: (used.user + used.system) / 1e6, rssGrowth: peak - baseline }
}

const fileSource = (path: string): AsyncIterable<Uint8Array> => createReadStream(path, { highWaterMark: 256 * 1024 })

function row(what: string, input: number, result: Measure): Record<string, string | number> {
  return {
    what,
    'input MB': (input / MB).toFixed(2),
    'output MB': Math.round(result.outputBytes / MB),
    'MB/s (wall)': Math.round(result.outputBytes / MB / result.seconds),
    'MB/s (cpu)': Math.round(result.outputBytes / MB / result.cpuSeconds),
    'peak RSS growth MB': Math.round(result.rssGrowth / MB),
  }
}

/** A NAR of ~200 MB: the start of `nix-store --dump /usr/lib` where Nix is installed, else a generated tree. */
async function makeNar(dir: string): Promise<{ path: string; source: string }> {
  const path = join(dir, 'sample.nar')
  if (hasCommand('nix-store')) {
    await sh(`nix-store --dump /usr/lib 2>/dev/null | head -c ${200 * MB} > ${path}`)
    if ((await stat(path)).size >= 100 * MB) return { path, source: 'first 200 MB of nix-store --dump /usr/lib' }
  }
  const tree = join(dir, 'tree')
  await makeBenchTree(tree)
  await pipeline(Readable.from(writeNar(dumpPath(tree))), createWriteStream(path))
  return { path, source: 'a generated tree (bench/lib.ts makeBenchTree)' }
}

export async function benchCodec(): Promise<void> {
  for (const tool of ['xz', 'zstd', 'bzip2', 'gzip']) if (!hasCommand(tool)) throw new Error(`${tool} is needed to make the benchmark's inputs`)
  const dir = await mkdtemp(join(tmpdir(), 'nixcas-bench-codec-'))
  try {
    const xzGiB = Number(process.env.NIXCAS_BENCH_XZ_BOMB_GIB ?? 20)
    const bombs: { method: CodecMethod; size: number; command: string }[] = [
      { method: 'zstd', size: 2 * GiB, command: 'zstd -c -q -19' },
      { method: 'bzip2', size: 2 * GiB, command: 'bzip2 -c -9' },
      { method: 'xz', size: xzGiB * GiB, command: 'xz -c -T1 -6' },
      { method: 'gzip', size: 2 * GiB, command: 'gzip -c -9' },
    ]
    const bombRows: Record<string, string | number>[] = []
    for (const bomb of bombs) {
      const path = join(dir, `bomb.${bomb.method}`)
      console.log(`making a ${bomb.size / GiB} GiB ${bomb.method} bomb`)
      await sh(`head -c ${bomb.size} /dev/zero | ${bomb.command} > ${path}`)
      const input = (await stat(path)).size
      const result = await measure(decode(fileSource(path), bomb.method))
      if (result.outputBytes !== bomb.size) throw new Error(`${bomb.method} bomb decoded to ${result.outputBytes} bytes`)
      bombRows.push(row(`${bomb.size / GiB} GiB of zeros, ${bomb.method}`, input, result))
      await rm(path)
    }
    console.log('Bombs decoded fully through decode() into a sink')
    report(bombRows)

    const nar = await makeNar(dir)
    const narBytes = (await stat(nar.path)).size
    const compressed: Record<string, { path: string; command: string }> = {
      xz: { path: `${nar.path}.xz`, command: `xz -c -T1 -3 < ${nar.path}` },
      zstd: { path: `${nar.path}.zst`, command: `zstd -c -q -3 < ${nar.path}` },
      bzip2: { path: `${nar.path}.bz2`, command: `bzip2 -c -9 < ${nar.path}` },
      gzip: { path: `${nar.path}.gz`, command: `gzip -c -6 < ${nar.path}` },
    }
    for (const { path, command } of Object.values(compressed)) await sh(`${command} > ${path}`)
    const brPath = `${nar.path}.br`
    await pipeline(Readable.from(encode(fileSource(nar.path), 'br', { level: 5 })), createWriteStream(brPath))
    compressed.br = { path: brPath, command: 'node:zlib brotli quality 5' }

    const decodeRows: Record<string, string | number>[] = []
    for (const [method, { path, command }] of Object.entries(compressed)) {
      const result = await measure(decode(fileSource(path), method as CodecMethod))
      decodeRows.push(row(`decode ${method} (made by ${command.split(' <')[0]})`, (await stat(path)).size, result))
    }
    const encodeRows: Record<string, string | number>[] = []
    for (const method of ['zstd', 'gzip', 'br', 'xz', 'bzip2'] as const) {
      const result = await measure(encode(fileSource(nar.path), method))
      encodeRows.push({ ...row(`encode ${method} (default level)`, narBytes, result), 'ratio %': ((100 * result.outputBytes) / narBytes).toFixed(1), 'MB/s (wall)': Math.round(narBytes / MB / result.seconds), 'MB/s (cpu)': Math.round(narBytes / MB / result.cpuSeconds) })
    }
    console.log(`NAR: ${nar.source}, ${(narBytes / MB).toFixed(0)} MB`)
    report(decodeRows)
    report(encodeRows)

    const table = (rows: Record<string, string | number>[]): string => {
      const keys = Object.keys(rows[0] ?? {})
      return [`| ${keys.join(' | ')} |`, `|${keys.map(() => '---').join('|')}|`, ...rows.map((line) => `| ${keys.map((key) => line[key]).join(' | ')} |`)].join('\n')
    }
    await writeResultSection(
      'codec',
      [
        '## codec: decoders against bombs, codec throughput',
        '',
        machineLine(),
        '',
        `Bombs decoded fully through \`decode()\` into a sink; peak RSS growth sampled between pieces and every 20 ms (target: < 150 MB). Encode MB/s are of NAR bytes in; decode MB/s of bytes out.`,
        '',
        table(bombRows),
        '',
        `NAR: ${nar.source}, ${(narBytes / MB).toFixed(0)} MB.`,
        '',
        table(decodeRows),
        '',
        table(encodeRows),
      ].join('\n'),
    )
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

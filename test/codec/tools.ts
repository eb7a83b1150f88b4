import { spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import type { CodecMethod } from '../../src/codec/methods.ts'

/** The command-line tools that stand for the real world: each method's reference encoder and decoder. */
export const CLI: Partial<Record<CodecMethod, { compress: string[]; decompress: string[] }>> = {
  xz: { compress: ['xz', '-c', '-1'], decompress: ['xz', '-dc'] },
  zstd: { compress: ['zstd', '-c', '-q', '-3'], decompress: ['zstd', '-dc', '-q'] },
  bzip2: { compress: ['bzip2', '-c', '-9'], decompress: ['bzip2', '-dc'] },
  gzip: { compress: ['gzip', '-c', '-6'], decompress: ['gzip', '-dc'] },
}

/** CI installs xz, zstd and bzip2; a local machine without one skips with the reason. */
export function skipWithout(method: CodecMethod): string | false {
  const tool = CLI[method]?.compress[0]
  if (!tool) return false
  return spawnSync(tool, ['--version']).status === 0 || process.env.CI ? false : `${tool} is not installed`
}

/** Runs a command with `input` on stdin and returns its stdout; fails on a non-zero exit. */
export function run(command: readonly string[], input: Uint8Array): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const [name, ...args] = command as [string, ...string[]]
    const child = spawn(name, args, { stdio: ['pipe', 'pipe', 'pipe'] })
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk))
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk))
    child.stdin.on('error', () => undefined) // a tool that fails early closes its stdin
    child.on('error', reject)
    child.on('close', (code) =>
      code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`${command.join(' ')} exited ${code}: ${Buffer.concat(err).toString()}`)),
    )
    child.stdin.end(input)
  })
}

/** Test data with the shapes NARs have: text, runs of zeros, incompressible bytes. */
export function sampleData(size: number): Buffer {
  const parts: Buffer[] = []
  let total = 0
  for (let index = 0; total < size; index++) {
    const part =
      index % 3 === 0 ? Buffer.from(`line ${index} of some text that repeats a little\n`.repeat(200)) : index % 3 === 1 ? Buffer.alloc(5000 + index) : randomBytes(3000)
    parts.push(part)
    total += part.length
  }
  return Buffer.concat(parts).subarray(0, size)
}

/** An async source that yields `bytes` in pieces of the given sizes (cycled). */
export async function* source(bytes: Uint8Array, sizes: readonly number[] = [65536]): AsyncGenerator<Uint8Array> {
  let offset = 0
  for (let index = 0; offset < bytes.length; index++) {
    const size = Math.max(1, sizes[index % sizes.length] ?? 1)
    yield bytes.subarray(offset, offset + size)
    offset += size
  }
}

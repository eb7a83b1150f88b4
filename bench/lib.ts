import { spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

export const nixEnv: NodeJS.ProcessEnv = {
  ...process.env,
  NIX_CONFIG: ['experimental-features = nix-command', 'sandbox = false', 'build-users-group ='].join('\n'),
}

export const hasCommand = (command: string, args = ['--version']): boolean => spawnSync(command, args, { env: nixEnv }).status === 0

/** Whether a command is installed (some, like wrk, have no option that exits 0). */
export const onPath = (command: string): boolean => spawnSync('sh', ['-c', `command -v ${command}`]).status === 0

export const MB = 1e6

/** Best of `runs` timings, in seconds: the least disturbed run on a shared machine. */
export async function best(runs: number, work: () => Promise<unknown>): Promise<number> {
  let fastest = Infinity
  for (let run = 0; run < runs; run++) {
    const start = process.hrtime.bigint()
    await work()
    fastest = Math.min(fastest, Number(process.hrtime.bigint() - start) / 1e9)
  }
  return fastest
}

/** Runs a command and counts the bytes it writes to stdout. */
export function countOutput(command: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: nixEnv, stdio: ['ignore', 'pipe', 'inherit'] })
    let bytes = 0
    child.stdout.on('data', (chunk: Buffer) => (bytes += chunk.length))
    child.on('error', reject)
    child.on('close', (code) => (code === 0 ? resolve(bytes) : reject(new Error(`${command} exited with ${code}`))))
  })
}

/**
 * A tree shaped like a real package: a few large binaries, many small text files, some
 * symlinks. Large files are random, small ones compressible; `scale` multiplies sizes.
 */
export async function makeBenchTree(root: string, scale = 1): Promise<void> {
  await mkdir(join(root, 'bin'), { recursive: true })
  for (let index = 0; index < 4; index++) await writeFile(join(root, 'bin', `tool-${index}`), randomBytes(Math.round(40 * scale * 1024 * 1024)), { mode: 0o755 })
  for (let group = 0; group < 40; group++) {
    const dir = join(root, 'share', `group-${group}`)
    await mkdir(dir, { recursive: true })
    for (let index = 0; index < 100; index++) {
      await writeFile(join(dir, `doc-${index}.txt`), `line ${group}/${index}\n`.repeat(20 + ((index * 37) % 400)))
    }
  }
}

export function report(rows: Record<string, string | number>[]): void {
  console.table(rows)
}

/** The same rows as a Markdown table, columns in the first row's order. */
export function markdownTable(rows: Record<string, string | number>[]): string {
  const keys = Object.keys(rows[0] ?? {})
  return [`| ${keys.join(' | ')} |`, `|${keys.map(() => '---').join('|')}|`, ...rows.map((line) => `| ${keys.map((key) => line[key]).join(' | ')} |`)].join('\n')
}

/** Runs a shell script with the output shown; rejects on a non-zero exit. */
export function sh(script: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', script], { stdio: ['ignore', 'inherit', 'inherit'] })
    child.on('error', reject)
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${script} exited with ${code}`))))
  })
}

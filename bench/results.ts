import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { cpus, totalmem } from 'node:os'

/** bench/results/LATEST.md: every benchmark keeps its own section there, replaced on each run. */
export const LATEST = join(dirname(fileURLToPath(import.meta.url)), 'results', 'LATEST.md')

const HEADER = '# Benchmark results\n\nEach section is replaced by the benchmark that owns it (`npm run bench -- <name>`).\n'

/** The machine a section was measured on, so figures from different runs are not compared blindly. */
export function machineLine(): string {
  const cpu = cpus()[0]?.model ?? 'unknown cpu'
  return `${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, ${cpus().length} × ${cpu}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`
}

/** Replaces (or appends) the section named `name` in LATEST.md with `markdown`. */
export async function writeResultSection(name: string, markdown: string): Promise<void> {
  const begin = `<!-- bench:${name} -->`
  const end = `<!-- /bench:${name} -->`
  let text = await readFile(LATEST, 'utf8').catch(() => HEADER)
  const section = `${begin}\n${markdown.trim()}\n${end}`
  const start = text.indexOf(begin)
  const stop = text.indexOf(end)
  text = start >= 0 && stop > start ? `${text.slice(0, start)}${section}${text.slice(stop + end.length)}` : `${text.trimEnd()}\n\n${section}\n`
  await mkdir(dirname(LATEST), { recursive: true })
  await writeFile(LATEST, text)
}

/**
 * Garbage collection at scale: `npm run bench -- gc`. Builds synthetic fs stores
 * (bench/gc-store.ts) and collects each with `--retain 0s --grace 0s` in a child process
 * of its own (bench/gc-child.ts): wall time, peak RSS (VmHWM), the heap held once marking
 * is done, objects listed, kept and deleted. Two series:
 *
 * - one mixed store of over a million objects (old-layout trees, data-pack paths, garbage);
 * - data-pack stores of 1, 3 and 10 million chunk references (what PackUsage and the mark
 *   set grow with), few objects each, so the memory curve is measured, not extrapolated.
 *
 * BENCH_GC_QUICK=1 runs a store a hundredth the size (a check that the benchmark works).
 * Each store lives in a temporary directory removed after its run (the mixed store takes
 * about 4 GB of disk blocks while it exists).
 */
import { spawn } from 'node:child_process'
import { mkdtemp, readFile, rm, statfs } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { machineLine, writeResultSection } from './results.ts'
import { buildStore, type StoreShape } from './gc-store.ts'

interface ChildResult {
  seconds: number
  peakRssKiB: number
  baselineRssKiB: number
  markedHeapBytes: number
  keptPaths: number
  deletedPaths: number
  kept: number
  deleted: number
  partlyDeadPacks: number
  deadPackBytes: number
  missingReferences: number
}

const here = dirname(fileURLToPath(import.meta.url))
const loadAverage = async (): Promise<string> => (await readFile('/proc/loadavg', 'utf8')).split(' ')[0] ?? '?'
const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(0)} MiB`
const millions = (count: number): string => `${(count / 1e6).toFixed(2)} M`

function runChild(dir: string, options: object): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--expose-gc', join(here, 'gc-child.ts'), dir, JSON.stringify(options)], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()))
    child.on('error', reject)
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`gc-child exited with ${code}`))
      else resolve(JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as ChildResult)
    })
  })
}

async function measure(label: string, shape: StoreShape): Promise<string> {
  const free = await statfs(tmpdir())
  const needed = shape.oldPaths * shape.oldFiles * (shape.oldChunks + 1) * 4096 + shape.packedPaths * 40_000
  if (free.bavail * free.bsize < needed * 2) throw new Error(`${label}: needs about ${mib(needed)} of disk in ${tmpdir()}, ${mib(free.bavail * free.bsize)} free`)
  const dir = await mkdtemp(join(tmpdir(), 'nixcas-bench-gc-'))
  try {
    console.log(`${label}: building`)
    const built = await buildStore(dir, shape)
    console.log(`  ${built.objects} objects, ${built.chunkReferences} chunk references in ${built.seconds.toFixed(0)} s; collecting`)
    const run = await runChild(dir, {})
    const again = await runChild(dir, {})
    console.log(`  ${JSON.stringify(run)}\n  second run: ${again.deleted} deleted`)
    if (run.missingReferences > 0 || again.deleted > 0) throw new Error(`${label}: ${run.missingReferences} missing references, ${again.deleted} objects deleted by a second run`)
    return `| ${label} | ${millions(built.objects)} | ${millions(built.chunkReferences)} | ${run.kept + run.deleted} | ${run.keptPaths} / ${run.deletedPaths} | ${run.kept} / ${run.deleted} | ${run.seconds.toFixed(1)} s | ${mib(run.peakRssKiB * 1024)} | ${mib(run.markedHeapBytes)} | ${again.seconds.toFixed(1)} s, ${mib(again.peakRssKiB * 1024)} |`
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

const packedOnly = (references: number): StoreShape => ({ packedPaths: references / 250, chunksPerPath: 250, oldPaths: 0, oldFiles: 0, oldChunks: 0, orphanChunks: 0, abortedPacks: 20, staleUploads: 1000 })

export async function benchGc(): Promise<void> {
  const quick = process.env.BENCH_GC_QUICK === '1'
  const scale = quick ? 0.01 : 1
  const loadBefore = await loadAverage()
  const rows: string[] = []
  const mixed: StoreShape = { packedPaths: 20_000 * scale, chunksPerPath: 50, oldPaths: 9_500 * scale, oldFiles: 8, oldChunks: 10, orphanChunks: 50_000 * scale, abortedPacks: 500 * scale, staleUploads: 5_000 * scale }
  rows.push(await measure('mixed: old layout and data packs', mixed))
  for (const references of quick ? [10_000, 30_000] : [1e6, 3e6, 10e6]) rows.push(await measure(`data packs, ${millions(references)} chunk refs`, packedOnly(references)))
  const loadAfter = await loadAverage()
  const markdown = [
    '## gc: garbage collection of synthetic stores, --retain 0s --grace 0s',
    '',
    `\`npm run bench -- gc\`${quick ? ' (BENCH_GC_QUICK=1: a hundredth of the size)' : ''} — ${machineLine()}; load average ${loadBefore} at the start, ${loadAfter} at the end (${cpus().length} cores shared with other work)`,
    '',
    'Each store is built through the Cas on an fs store (bench/gc-store.ts): paths in chains of four, a third of the chains pinned, data packs shared by neighbouring paths and a pool of 64 shared packs, index segments, packs of aborted uploads, stale upload names; the mixed store adds old-layout trees (one object per directory, manifest and 64-byte chunk) and orphaned chunk objects. Each collection runs alone in a child process; a second run follows and must delete nothing. Peak RSS is VmHWM of that process (a bare one is about 100 MiB); "held after marking" is the live heap and array buffers at the start of the sweep (after a full GC) minus those before the run: the mark set, pack usage and kept paths.',
    '',
    '| store | objects | chunk refs | listed | paths kept / deleted | objects kept / deleted | wall | peak RSS | held after marking | second run |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...rows,
  ].join('\n')
  console.log(markdown)
  await writeResultSection('gc', markdown)
}

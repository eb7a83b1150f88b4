/**
 * One garbage collection of an fs store, alone in its process (started by bench/gc.ts
 * with --expose-gc), so its peak RSS is the collector's own: prints one JSON line with the
 * wall time, VmHWM, the live heap once marking is done, and the report's tallies.
 *
 *   node --import tsx --expose-gc bench/gc-child.ts DIR '{"retain":0,"grace":0}'
 */
import { readFileSync } from 'node:fs'
import { pino } from 'pino'
import { Cas } from '../src/cas/cas.ts'
import { collectGarbage, type GcOptions } from '../src/lifecycle/gc.ts'
import { composeStores } from '../src/stores/compose.ts'

const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? NaN)

/** What is still reachable now (after a full collection): the heap and array buffers (Bloom filters live in those). */
function liveHeap(): number {
  ;(globalThis as { gc?: () => void }).gc?.()
  const usage = process.memoryUsage()
  return usage.heapUsed + usage.arrayBuffers
}

const [dir, optionsJson] = process.argv.slice(2)
if (dir === undefined) throw new Error('usage: gc-child.ts DIR [OPTIONS_JSON]')
const options = JSON.parse(optionsJson ?? '{}') as Partial<GcOptions>
const stack = composeStores({ stores: { disk: { type: 'fs', path: dir, fsync: false } }, root: 'disk' }, { logger: pino({ level: 'warn' }) })
const baseline = { rssKiB: kib('VmHWM'), heap: liveHeap() }
let markedHeap = 0
const start = process.hrtime.bigint()
const report = await collectGarbage(new Cas(stack.root), {
  retain: 0,
  grace: 0,
  storeDir: '/nix/store',
  instances: stack.instances.values(),
  ...options,
  onPhase: (phase) => {
    if (phase === 'sweeping') markedHeap = liveHeap()
  },
})
const seconds = Number(process.hrtime.bigint() - start) / 1e9
await stack.close()
const sum = (tallies: Record<string, { objects: number; bytes: number }>): number => Object.values(tallies).reduce((total, tally) => total + tally.objects, 0)
process.stdout.write(`${JSON.stringify({
  seconds,
  peakRssKiB: kib('VmHWM'),
  baselineRssKiB: baseline.rssKiB,
  markedHeapBytes: markedHeap - baseline.heap,
  keptPaths: report.keptPaths,
  deletedPaths: report.deletedPaths.length,
  kept: sum(report.kept),
  deleted: sum(report.deleted),
  keptByKind: report.kept,
  deletedByKind: report.deleted,
  partlyDeadPacks: report.partlyDeadPacks,
  deadPackBytes: report.deadPackBytes,
  missingReferences: report.missingReferences.length,
})}\n`)

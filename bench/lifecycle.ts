/**
 * What the storage lifecycle costs: (1) recording a served path, per request, beside a bare
 * Set insertion (the floor) — the narinfo GET path pays this; (2) a garbage collection's
 * choice of roots on a store of synthetic paths pushed through the app (chains of ten, so
 * closures matter) in an fs store: retention alone, then with a size budget (LRU eviction), and a whole
 * dry-run collection of each.
 *   npm run bench -- lifecycle
 */
import { randomBytes } from 'node:crypto'
import { loadavg } from 'node:os'
import { Cas } from '../src/cas/cas.ts'
import { readAccessTimes } from '../src/lifecycle/access-log.ts'
import { AccessRecorder } from '../src/lifecycle/access-recorder.ts'
import { collectGarbage } from '../src/lifecycle/gc.ts'
import { chooseRoots } from '../src/lifecycle/policy.ts'
import { encodeNixbase32 } from '../src/nix/nixbase32.ts'
import { FsStore } from '../src/stores/fs.ts'
import { MemoryStore } from '../src/stores/memory.ts'
import { build } from '../test/helpers/app.ts'
import { makePath, push, type TestPath } from '../test/helpers/push.ts'
import { tempDir } from '../test/helpers/trees.ts'
import { machineLine, writeResultSection } from './results.ts'

const PATHS = 2000
const CALLS = 2_000_000

function scope(): { teardown: (fn: () => Promise<void>) => void; close: () => Promise<void> } {
  const hooks: (() => Promise<void>)[] = []
  return { teardown: (fn) => void hooks.push(fn), close: async () => { for (const hook of hooks.reverse()) await hook() } }
}

/** Nanoseconds per call of each recorder over `hashes`, best of five runs taken in turns (so load and JIT warm-up fall on both alike). */
function perCall(hashes: readonly string[], recorders: readonly ((hash: string) => void)[]): number[] {
  const best = recorders.map(() => Infinity)
  for (let run = 0; run < 5; run++) {
    recorders.forEach((record, index) => {
      const started = process.hrtime.bigint()
      for (let call = 0; call < CALLS; call++) record(hashes[call % hashes.length] as string)
      best[index] = Math.min(best[index] as number, Number(process.hrtime.bigint() - started) / CALLS)
    })
  }
  return best
}

async function timed<T>(work: () => Promise<T>): Promise<{ ms: number; result: T }> {
  const started = performance.now()
  const result = await work()
  return { ms: performance.now() - started, result }
}

export async function benchLifecycle(): Promise<void> {
  const load = loadavg().map((value) => value.toFixed(2)).join(' ')
  const hashes = Array.from({ length: 10_000 }, () => encodeNixbase32(randomBytes(20)))
  const floor = new Set<string>()
  const recorder = new AccessRecorder(new MemoryStore('memory'), { maxEntries: 100_000 })
  const [bare, recorded] = perCall(hashes, [(hash) => void floor.add(hash), (hash) => recorder.path(hash)]) as [number, number]

  const t = scope()
  const storeDir = await tempDir(t)
  const app = await build(t, { stores: { stores: { disk: { type: 'fs', path: storeDir, fsync: false } }, root: 'disk' } })
  const dir = await tempDir(t)
  let previous: TestPath | undefined
  const paths: TestPath[] = []
  for (let index = 0; index < PATHS; index++) {
    const path = await makePath(dir, `p${index}`, { data: randomBytes(2000) }, index % 10 === 0 || !previous ? [] : [previous])
    const status = await push(app, path)
    if (status !== 204) throw new Error(`push of ${path.base}: ${status}`)
    paths.push(path)
    previous = path
  }
  // Half the paths were downloaded: the app writes their access record as it closes.
  for (const path of paths.slice(0, PATHS / 2)) await app.inject({ url: `/${path.hash}.narinfo` })
  await app.close()
  const fs = new FsStore('disk', { path: storeDir, fsync: false })
  const cas = new Cas(fs)
  const access = await readAccessTimes(cas.store)
  const policy = { retainedSince: Date.now() - 86_400_000, youngSince: Date.now(), pinned: [], access }
  const retention = await timed(() => chooseRoots(cas, policy))
  const budget = await timed(() => chooseRoots(cas, { ...policy, maxSize: 1 }))
  const gcPlain = await timed(() => collectGarbage(cas, { retain: 86_400_000, grace: 0, storeDir: '/nix/store', dryRun: true }))
  const gcBudget = await timed(() => collectGarbage(cas, { retain: 86_400_000, maxSize: 1, grace: 0, storeDir: '/nix/store', dryRun: true }))

  const lines = [
    '## lifecycle',
    '',
    `${machineLine()}; load average ${load} at the start (machine shared with other work).`,
    '',
    `Recording a served path (AccessRecorder.path), ${CALLS.toLocaleString('en')} calls over 10 000 hashes: ${recorded.toFixed(1)} ns a call, beside ${bare.toFixed(1)} ns for a bare Set.add (ratio ${(recorded / bare).toFixed(2)}).`,
    '',
    `Choosing what to keep on an fs store of ${PATHS} paths (chains of ten), all retained (half downloaded), in one run:`,
    '',
    '| | ms | paths evicted |',
    '|---|---|---|',
    `| retention only (chooseRoots) | ${retention.ms.toFixed(0)} | ${retention.result.evicted.length} |`,
    `| with maxSize 1 byte (reads every PathInfo and NAR record, evicts all in LRU order) | ${budget.ms.toFixed(0)} | ${budget.result.evicted.length} |`,
    `| whole gc --dry-run, retention only | ${gcPlain.ms.toFixed(0)} | ${gcPlain.result.evictedPaths.length} |`,
    `| whole gc --dry-run, with maxSize 1 byte | ${gcBudget.ms.toFixed(0)} | ${gcBudget.result.evictedPaths.length} |`,
  ]
  await fs.close()
  await t.close()
  console.log(lines.join('\n'))
  await writeResultSection('lifecycle', lines.join('\n'))
}

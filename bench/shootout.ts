/**
 * nixcas side by side with nginx and Nix, in one run, on a corpus made from this machine's
 * /usr: closure downloads, narinfo rates, a 4,000-file NAR from disk and from S3 with
 * latency, NAR ingest, `nix copy` pushes, peak memory and bytes stored. nixcas is reached
 * only over HTTP, as a child process started from its CLI, so the benchmark holds whatever
 * its storage layout. Writes its table to bench/results/LATEST.md.
 *   npm run bench -- shootout                      (full: ~300 paths, 3 runs of each measure)
 *   SHOOTOUT_QUICK=1 npm run bench -- shootout     (~30 paths, 1 run: a few minutes)
 *   SHOOTOUT_NIXCAS=/path/to/checkout …            (run that nixcas instead of this one)
 */
import { createHash } from 'node:crypto'
import { mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { MB, onPath } from './lib.ts'
import { Cleanup, runCommand } from './lib/procs.ts'
import { machineLine, writeResultSection } from './results.ts'
import { du } from './shootout-client.ts'
import { nixCopy, readCachedPaths, sum, type Context } from './shootout-context.ts'
import { DOC, loadClosure, loadTwoVersions } from './shootout-corpus.ts'
import { measureReads } from './shootout-read.ts'
import { renderShootout } from './shootout-report.ts'
import { NIXCAS, REPO, startNginx } from './shootout-servers.ts'
import { measureIngest, measurePush, measureS3, measureTwoVersions } from './shootout-write.ts'

const TOOLS = ['nix', 'nix-store', 'nginx', 'curl', 'wrk', 'du', 'sync']

/** Prints what the run is doing and how long each step took, so a slow step is visible. */
async function step<T>(what: string, work: () => Promise<T>): Promise<T> {
  const start = Date.now()
  console.log(`· ${what}…`)
  const result = await work()
  console.log(`  ${what}: ${((Date.now() - start) / 1000).toFixed(1)} s`)
  return result
}

/** The commit measured, and whether the working tree had changes to the server's code. */
async function revision(cleanup: Cleanup): Promise<string> {
  const git = async (args: string[]): Promise<string> => (await runCommand(cleanup, 'git', args, { cwd: NIXCAS, timeoutMs: 30_000 })).stdout.trim()
  const where = NIXCAS === REPO ? '' : ` from ${NIXCAS}`
  try {
    const head = await git(['rev-parse', '--short', 'HEAD'])
    const dirty = await git(['status', '--porcelain', '--', 'src', 'routes'])
    return `at ${head}${dirty === '' ? '' : ' with uncommitted changes in src/ or routes/'}${where}`
  } catch {
    return where === '' ? 'at an unknown revision' : where.trim()
  }
}

/**
 * A digest of nixcas's source (src/ and routes/). Each nixcas process loads the source as
 * it is when it starts, so a tree edited during the run would mix two versions' figures.
 */
async function sourceDigest(): Promise<string> {
  const hash = createHash('sha256')
  for (const top of ['src', 'routes']) {
    const files = (await readdir(join(NIXCAS, top), { recursive: true, withFileTypes: true }).catch(() => []))
      .filter((entry) => entry.isFile())
      .map((entry) => join(entry.parentPath, entry.name))
      .sort()
    for (const file of files) hash.update(`${file}\0`).update(await readFile(file)).update('\0')
  }
  return hash.digest('hex').slice(0, 12)
}

async function nixcasLogs(dir: string): Promise<{ name: string; text: string }[]> {
  const names = (await readdir(dir)).filter((name) => /^nixcas-\d+\.log$/.test(name))
  names.sort((a, b) => Number(/\d+/.exec(a)?.[0]) - Number(/\d+/.exec(b)?.[0]))
  return Promise.all(names.map(async (name) => ({ name, text: await readFile(join(dir, name), 'utf8') })))
}

/** Errors nixcas logged (pino level ≥ 50) in any of its processes, which a run must not hide. */
async function reportNixcasErrors(dir: string): Promise<void> {
  const errors = (await nixcasLogs(dir)).flatMap((log) => log.text.split('\n').filter((line) => /"level":(5|6)0/.test(line)).map((line) => `${log.name}: ${line}`))
  if (errors.length > 0) console.warn(`nixcas logged ${errors.length} errors, the first:\n${errors.slice(0, 3).join('\n')}`)
}

async function shootout(cleanup: Cleanup, quick: boolean): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'nixcas-shootout-'))
  cleanup.teardown(() => rm(dir, { recursive: true, force: true }))
  try {
    await measureAll(cleanup, dir, quick)
    await reportNixcasErrors(dir)
  } catch (error) {
    const last = (await nixcasLogs(dir).catch(() => [])).at(-1)
    if (last && !(error instanceof Error && error.message.includes(last.name))) console.error(`the last nixcas process's log (${last.name}):\n${last.text.split('\n').slice(-30).join('\n')}`)
    throw error
  }
}

async function measureAll(cleanup: Cleanup, dir: string, quick: boolean): Promise<void> {
  const reps = quick ? 1 : 3
  const loadBefore = loadavg()[0] ?? 0
  const sourceBefore = await sourceDigest()
  const closure = await step('corpus', () => loadClosure(cleanup, quick))
  const tree = await step('corpus: two versions of a tree', () => loadTwoVersions(cleanup))
  const docPath = closure.paths.find((path) => path.source === DOC)
  if (!docPath) throw new Error(`${DOC} could not be added to the Nix store`)

  const cache = join(dir, 'cache')
  const dav = join(dir, 'dav')
  await mkdir(dav)
  const storePaths = closure.paths.map((path) => path.storePath)
  // Also warms the page cache with every path before anything is timed.
  await step("nginx's cache (nix copy --to file://)", () => nixCopy({ cleanup, dir }, `file://${cache}?compression=none`, storePaths))
  const cached = await readCachedPaths(cache, storePaths)
  const doc = cached.find((path) => path.storePath === docPath.storePath)
  if (!doc) throw new Error('the doc path is missing from the cache')
  const nginx = await startNginx(cleanup, join(dir, 'nginx'), cache, dav)
  const ctx: Context = { cleanup, dir, reps, quick, nginx, cache, dav, closure: cached, doc: { ...doc, files: docPath.files } }
  const logical = sum(cached.map((path) => path.narSize))
  console.log(`  ${cached.length} paths, ${Math.round(logical / MB)} MB of NAR; ${closure.skipped.length} skipped; ${reps} run(s) of each measure`)

  const pushed = await step('push (nix copy)', () => measurePush(ctx))
  const stored = { nixcas: await du(cleanup, pushed.data), nginx: await du(cleanup, cache), logical }
  const read = await step('reads', () => measureReads(ctx, pushed.data))
  await rm(pushed.data, { recursive: true, force: true })
  const ingest = await step('ingest (curl PUT)', () => measureIngest(ctx))
  const s3 = await step('S3 with latency', () => measureS3(ctx))
  const twoVersions = await step('two versions of a tree', () => measureTwoVersions(ctx, tree))
  await nginx.stop()
  const sourceAfter = await sourceDigest()
  if (sourceAfter !== sourceBefore) console.warn("nixcas's source changed during the run: its figures mix two versions")

  const command = `${quick ? 'SHOOTOUT_QUICK=1 ' : ''}npm run bench -- shootout`
  const markdown = renderShootout({
    command,
    machine: `${machineLine()}, load average ${loadBefore.toFixed(1)} at the start and ${(loadavg()[0] ?? 0).toFixed(1)} at the end`,
    busy: Math.max(loadBefore, loadavg()[0] ?? 0) > cpus().length,
    revision: `${await revision(cleanup)} (source ${sourceBefore}${sourceAfter === sourceBefore ? '' : `, changed to ${sourceAfter} during the run: figures mix two versions`})`,
    quick,
    reps,
    closure: { ...closure, narBytes: logical },
    doc: { files: docPath.files, narSize: doc.narSize },
    tree,
    push: pushed.push,
    stored,
    read,
    ingest,
    s3,
    twoVersions,
  })
  console.log(`\n${markdown}`)
  // A quick run has its own section, so iterating never replaces the full run's figures.
  await writeResultSection(quick ? 'shootout-quick' : 'shootout', markdown)
}

export async function benchShootout(): Promise<void> {
  const missing = TOOLS.filter((tool) => !onPath(tool))
  if (missing.length > 0) throw new Error(`shootout: needs ${missing.join(', ')} (apt-get install nix-bin nginx-light curl wrk)`)
  const cleanup = new Cleanup()
  const uninstall = cleanup.installSignalHandlers()
  try {
    await shootout(cleanup, process.env.SHOOTOUT_QUICK === '1')
  } finally {
    await cleanup.run()
    uninstall()
  }
}

// Also runnable on its own (node --import tsx --openssl-legacy-provider bench/shootout.ts),
// so it does not depend on the other benchmarks' imports of nixcas internals.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await benchShootout()

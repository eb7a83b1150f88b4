/**
 * The shootout's corpus: store paths made with `nix-store --add` from this machine's /usr,
 * so every server is measured on the same real, mixed data (binaries, libraries, thousands
 * of small docs). The store paths are cached between runs in ~/.cache/nixcas-bench (adding
 * is idempotent, but hashing 900 MB again costs a minute); a cache entry whose paths are no
 * longer valid in the Nix store is rebuilt.
 */
import { createHash } from 'node:crypto'
import { cp, mkdir, mkdtemp, open, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { homedir, tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { nixEnv } from './lib.ts'
import { runCommand, type Cleanup } from './lib/procs.ts'

export interface CorpusPath {
  source: string
  storePath: string
  /** Regular files in it. */
  files: number
}

export interface Closure {
  paths: CorpusPath[]
  /** Sources `nix-store --add` refused, with its reason. */
  skipped: { source: string; reason: string }[]
}

export interface TwoVersions {
  source: string
  v1: CorpusPath
  /** A copy of `source` with a third of its files edited. */
  v2: CorpusPath
  edited: number
}

const CACHE_DIR = join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'nixcas-bench')
/** Bump when the corpus definition or the edit recipe changes, so old caches are not reused. */
const RECIPE = 1
export const DOC = '/usr/share/doc'

async function subdirs(parent: string): Promise<string[]> {
  const entries = await readdir(parent, { withFileTypes: true }).catch(() => [])
  return entries
    .filter((entry) => entry.isDirectory())
    .map((entry) => join(parent, entry.name))
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
}

/** The issue's corpus definition; quick mode takes ~30 paths of the same kinds. */
async function closureSources(quick: boolean): Promise<string[]> {
  const pythons = (await subdirs('/usr/lib')).filter((dir) => /\/python3\.\d+$/.test(dir))
  const python = (await Promise.all(pythons.map(subdirs))).flat()
  const gnu = await subdirs('/usr/lib/x86_64-linux-gnu')
  const docs = await subdirs(DOC)
  if (quick) return [...docs.slice(0, 20), ...python.slice(0, 4), ...gnu.slice(0, 4), '/usr/lib/gcc', DOC]
  return [...docs.slice(0, 250), ...python, ...gnu, '/usr/bin', '/usr/lib/gcc', DOC]
}

async function listFiles(dir: string, out: string[] = []): Promise<string[]> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) await listFiles(path, out)
    else if (entry.isFile()) out.push(path)
  }
  return out
}

async function countFiles(path: string): Promise<number> {
  return (await stat(path)).isDirectory() ? (await listFiles(path)).length : 1
}

/** `nix-store --add` in batches; a batch that fails is retried path by path to find the culprit. */
async function addAll(cleanup: Cleanup, sources: string[]): Promise<Closure> {
  const add = async (batch: string[]): Promise<string[]> => {
    const { stdout } = await runCommand(cleanup, 'nix-store', ['--add', ...batch], { env: nixEnv, timeoutMs: 15 * 60_000 })
    const lines = stdout.trim().split('\n')
    if (lines.length !== batch.length) throw new Error(`nix-store --add printed ${lines.length} paths for ${batch.length} sources`)
    return lines
  }
  const closure: Closure = { paths: [], skipped: [] }
  for (let start = 0; start < sources.length; start += 40) {
    const batch = sources.slice(start, start + 40)
    let added: (string | Error)[]
    try {
      added = await add(batch)
    } catch {
      added = []
      for (const source of batch) added.push(await add([source]).then((paths) => paths[0] ?? new Error('no path printed'), (error: Error) => error))
    }
    for (const [index, source] of batch.entries()) {
      const result = added[index]
      if (typeof result === 'string') closure.paths.push({ source, storePath: result, files: await countFiles(result) })
      else closure.skipped.push({ source, reason: (result?.message ?? 'unknown').split('\n').find((line) => /error/i.test(line)) ?? 'refused' })
    }
  }
  return closure
}

async function readCache<T>(cleanup: Cleanup, name: string, key: unknown, storePaths: (value: T) => string[]): Promise<T | undefined> {
  try {
    const cached = JSON.parse(await readFile(join(CACHE_DIR, name), 'utf8')) as { key: unknown; value: T }
    if (JSON.stringify(cached.key) !== JSON.stringify(key)) return undefined
    const paths = storePaths(cached.value)
    if (paths.length > 0) await runCommand(cleanup, 'nix-store', ['--check-validity', ...paths], { env: nixEnv, timeoutMs: 60_000 })
    return cached.value
  } catch {
    return undefined
  }
}

async function writeCache(name: string, key: unknown, value: unknown): Promise<void> {
  await mkdir(CACHE_DIR, { recursive: true })
  await writeFile(join(CACHE_DIR, name), JSON.stringify({ key, value }, null, 1))
}

/** The closure: every source added, or skipped with the reason. */
export async function loadClosure(cleanup: Cleanup, quick: boolean): Promise<Closure> {
  const sources = await closureSources(quick)
  const name = `shootout-closure-${quick ? 'quick' : 'full'}.json`
  const key = { RECIPE, sources }
  const cached = await readCache<Closure>(cleanup, name, key, (closure) => closure.paths.map((path) => path.storePath))
  if (cached) return cached
  console.log(`adding ${sources.length} paths from /usr to the Nix store (cached afterwards)`)
  const closure = await addAll(cleanup, sources)
  await writeCache(name, key, closure)
  return closure
}

/**
 * A copy of `target` with a third of its files (every third, in path order) given three
 * 32-byte edits at 1/4, 1/2 and 3/4 of their length, as when a dependency's store path
 * changes inside a rebuild. The bytes are derived from the file's path, so the edited copy
 * is the same store path on every run.
 */
async function editCopy(source: string, target: string): Promise<number> {
  await cp(source, target, { recursive: true, verbatimSymlinks: true })
  const files = (await listFiles(target)).sort()
  let edited = 0
  for (let index = 0; index < files.length; index += 3) {
    const path = files[index] as string
    const { size } = await stat(path)
    if (size < 64) continue
    const handle = await open(path, 'r+')
    try {
      for (let edit = 0; edit < 3; edit++) {
        const bytes = createHash('sha256').update(`${relative(target, path)}:${edit}`).digest()
        await handle.write(bytes, 0, 32, Math.floor(((edit + 1) * size) / 4) - 16)
      }
    } finally {
      await handle.close()
    }
    edited++
  }
  return edited
}

/** `source` and its edited copy, both added to the Nix store. */
export async function loadTwoVersions(cleanup: Cleanup, source = '/usr/bin'): Promise<TwoVersions> {
  const name = 'shootout-two-versions.json'
  const key = { RECIPE, source }
  const cached = await readCache<TwoVersions>(cleanup, name, key, (value) => [value.v1.storePath, value.v2.storePath])
  if (cached) return cached
  console.log(`adding ${source} and a copy with a third of its files edited to the Nix store (cached afterwards)`)
  const dir = await mkdtemp(join(tmpdir(), 'nixcas-shootout-tree-'))
  cleanup.teardown(() => rm(dir, { recursive: true, force: true }))
  try {
    const copy = join(dir, `${source.split('/').filter(Boolean).join('-')}-edited`)
    const edited = await editCopy(source, copy)
    const added = await addAll(cleanup, [source, copy])
    const [v1, v2] = added.paths
    if (!v1 || !v2) throw new Error(`nix-store --add refused the tree: ${added.skipped.map((skip) => `${skip.source}: ${skip.reason}`).join('; ')}`)
    const value: TwoVersions = { source, v1: { ...v1, source }, v2, edited }
    await writeCache(name, key, value)
    return value
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

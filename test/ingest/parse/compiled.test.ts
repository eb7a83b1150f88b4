import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { parseNarEvents } from '../../../src/ingest/parse/parse.ts'
import { narOf } from '../../helpers/nar-samples.ts'
import { makeGoldenTrees, tempDir } from '../../helpers/trees.ts'
import { compress, outcome, pieces } from './helpers.ts'

const run = promisify(execFile)
const REPO = join(import.meta.dirname, '../../..')

/** Parses a NAR file through the compiled pool and prints the events, under plain node (no tsx). */
const SCRIPT = `
import { readFile } from 'node:fs/promises'
import { IngestWorkers } from './src/ingest/parse/workers.js'
const [file, method] = process.argv.slice(2)
const body = await readFile(file)
const workers = new IngestWorkers({ size: 1 })
const hex = (bytes) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
let count = 0
let last
for await (const event of workers.parse((async function* () { yield body })(), { method })) {
  count++
  last = event
}
await workers.close()
console.log(JSON.stringify({ count, narHash: hex(last.narHash), narSize: last.narSize, execArgv: process.execArgv }))
`

t.test('the pool runs compiled (as npm start does), its worker from worker.js under plain node', async (t) => {
  const out = await tempDir(t)
  // The build's settings, limited to the pool and what it imports (the worker entry is loaded by URL, so it is named too).
  await writeFile(
    join(out, 'tsconfig.json'),
    JSON.stringify({
      extends: join(REPO, 'tsconfig.build.json'),
      compilerOptions: { outDir: out, rootDir: REPO, sourceMap: false },
      files: [join(REPO, 'src/ingest/parse/workers.ts'), join(REPO, 'src/ingest/parse/worker.ts')],
      include: [],
    }),
  )
  // Type errors elsewhere in a tree being edited must not stop the emit; a missing file below fails the test.
  await run(process.execPath, [join(REPO, 'node_modules/typescript/bin/tsc'), '-p', join(out, 'tsconfig.json')]).catch(() => undefined)
  t.ok(existsSync(join(out, 'src/ingest/parse/worker.js')), 'worker.js was emitted')
  await writeFile(join(out, 'package.json'), JSON.stringify({ type: 'module' }))
  await symlink(join(REPO, 'node_modules'), join(out, 'node_modules'))
  await writeFile(join(out, 'run.mjs'), SCRIPT)

  const trees = await makeGoldenTrees(join(out, 'golden'))
  const nar = (await narOf(trees.mixed as string)).bytes
  const body = await compress(nar, 'zstd')
  await writeFile(join(out, 'nar.zst'), body)
  const expected = await outcome(parseNarEvents(pieces(body), { method: 'zstd' }))

  const { stdout } = await run(process.execPath, [join(out, 'run.mjs'), join(out, 'nar.zst'), 'zstd'], { cwd: out, env: { ...process.env, NODE_OPTIONS: '' } })
  const result = JSON.parse(stdout) as { count: number; narHash: string; narSize: number; execArgv: string[] }
  t.strictSame(result.execArgv, [], 'no loader in the process')
  t.equal(result.count, expected.events.length, 'as many events as in-thread')
  t.equal(`done ${result.narHash} ${result.narSize}`, expected.events.at(-1), 'the same NAR hash and size')
})

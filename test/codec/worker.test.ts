import { Worker } from 'node:worker_threads'
import t from 'tap'
import { decode } from '../../src/codec/decode.ts'
import type { CodecMethod } from '../../src/codec/methods.ts'
import { collect } from '../helpers/streams.ts'
import { CLI, run, sampleData, skipWithout, source } from './tools.ts'

const METHODS: CodecMethod[] = ['none', 'xz', 'zstd', 'bzip2', 'gzip', 'deflate', 'br']

/** Native addons (liblzma, libzstd) must load and work in more than one worker at a time. */
t.test('every method round-trips inside worker threads', { skip: skipWithout('xz') }, async (t) => {
  const data = sampleData(300_000)
  const runWorker = (): Promise<Record<string, { compressed: Uint8Array; roundTrip: boolean }>> =>
    new Promise((resolve, reject) => {
      // Node 20 workers get no tsx hooks from the parent: register tsx, then import the .ts entry.
      const entry = new URL('./worker-codec.ts', import.meta.url).href
      const script = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}) })`
      const worker = new Worker(script, { eval: true, workerData: { data, methods: METHODS } })
      worker.once('message', resolve)
      worker.once('error', reject)
      worker.once('exit', (code) => reject(new Error(`the worker exited with ${code} before answering`)))
    })
  const [first, second] = await Promise.all([runWorker(), runWorker()])
  for (const method of METHODS) {
    const result = first[method]
    t.ok(result?.roundTrip && second[method]?.roundTrip, `${method}: round trip in two workers at once`)
    const cli = CLI[method]
    if (result && cli) t.ok((await run(cli.decompress, result.compressed)).equals(data), `${method}: what the worker encoded, ${cli.decompress[0]} decodes`)
    if (result) t.ok((await collect(decode(source(result.compressed), method))).equals(data), `${method}: and the main thread decodes`)
  }
})

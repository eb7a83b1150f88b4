import { Worker, type ResourceLimits } from 'node:worker_threads'

const FROM_SOURCE = import.meta.url.endsWith('.ts')

/**
 * Starts an ingest worker running `worker.ts` (from source) or `worker.js` (compiled).
 *
 * Compiled (`dist/`, `npm start`): a plain module worker; it inherits the process's
 * execArgv.
 *
 * From source (tsx: `npm test`, `npm run bench`, `import.meta.url` ends with `.ts`): tsx
 * works by registering module hooks (`module.register`) from `--import tsx`. On Node 20
 * a worker gets neither the main thread's hooks nor, measured here, working hooks from
 * `--import tsx` in its own execArgv: its `.ts` entry fails with "Unknown file extension".
 * So the worker starts from a one-line eval script that registers tsx through its
 * API (`tsx/esm/api`, resolved from here) and then imports the `.ts` entry. tsx is a dev
 * dependency, looked up only in this case.
 */
export function spawnIngestWorker(resourceLimits: ResourceLimits): Worker {
  const entry = new URL(FROM_SOURCE ? './worker.ts' : './worker.js', import.meta.url)
  if (!FROM_SOURCE) return new Worker(entry, { resourceLimits })
  const api = import.meta.resolve('tsx/esm/api')
  const script = `import(${JSON.stringify(api)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry.href)}) })`
  return new Worker(script, { eval: true, resourceLimits })
}

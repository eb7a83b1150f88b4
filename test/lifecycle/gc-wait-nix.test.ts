import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { keys } from '../../src/cas/keys.ts'
import { encodeGcRun } from '../../src/cas/lease.ts'
import { FsStore } from '../../src/stores/fs.ts'
import { buildClosure } from '../helpers/closure.ts'
import { nixEnv, skipWithoutNix } from '../helpers/nix.ts'
import { serve } from '../helpers/nix-client.ts'
import { testConfig } from '../helpers/app.ts'
import { tempDir } from '../helpers/trees.ts'

/** `nix copy --to`, killed after `timeout` ms: its exit, and what it printed. */
function nixCopy(dir: string, url: string, path: string, timeout: number): Promise<{ code: number | null; killed: boolean; output: string }> {
  const env = { ...nixEnv, XDG_CACHE_HOME: join(dir, `xdg-${Date.now()}`), NIX_CONFIG: `${nixEnv.NIX_CONFIG}\nsubstituters =` }
  return new Promise((resolve) => {
    execFile('nix', ['copy', '-v', '--to', url, path], { env, timeout, killSignal: 'SIGKILL' }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? null) : 0, killed: (error as { killed?: boolean } | null)?.killed ?? false, output: `${stdout}${stderr}` })
    })
  })
}

const narinfoPuts = (metrics: string): string[] => metrics.split('\n').filter((line) => line.startsWith('nixcas_http_requests_total{route="/:hash.narinfo",method="PUT"'))

/** Resolves once a narinfo PUT holds a claim, i.e. waits for the deleting run (cas/lease.ts). */
async function narinfoWaiting(store: FsStore): Promise<void> {
  for (;;) {
    for await (const object of store.list(keys.leases)) if (object.key.includes('/claim-')) return
    await sleep(50)
  }
}

/**
 * What `nix copy` (Nix 2.8) sees when a collection on another replica is deleting while it
 * pushes: a narinfo PUT that waits it out succeeds; one answered 503 after gc.narinfoWait is
 * retried by Nix without its body, and the push hangs (until killed here).
 */
t.test('the real Nix client while a collection deletes: a wait within gc.narinfoWait is invisible, a 503 hangs the push', { skip: skipWithoutNix }, async (t) => {
  const dir = await tempDir(t)
  const closure = await buildClosure(dir)
  const defaults = await testConfig()
  const setup = async (narinfoWait: number): Promise<{ app: FastifyInstance; url: string; store: FsStore }> => {
    const storePath = await tempDir(t)
    const { app, url } = await serve(t, { stores: { stores: {}, root: `file://${storePath}` }, gc: { ...defaults.gc, narinfoWait } })
    const store = new FsStore('disk', { path: storePath, fsync: false })
    t.teardown(() => store.close())
    // Another replica's run, in its deleting phase until the test removes it.
    await store.put(keys.gcRun('held'), encodeGcRun({ phase: 'deleting', grace: 0 }))
    return { app, url, store }
  }

  const patient = await setup(600_000)
  const pushing = nixCopy(dir, patient.url, closure.top, 600_000)
  await narinfoWaiting(patient.store)
  await patient.store.delete(keys.gcRun('held'))
  const pushed = await pushing
  t.equal(pushed.code, 0, `the push succeeds once the run ends: ${pushed.output.slice(-300)}`)
  t.same(narinfoPuts((await patient.app.inject({ url: '/metrics' })).body).filter((line) => !line.includes('status="204"')), [], 'every narinfo PUT was answered 204')

  const hasty = await setup(500)
  const hung = await nixCopy(dir, hasty.url, closure.top, 25_000)
  t.ok(hung.killed, 'past the wait, the push never finishes')
  t.match(hung.output, /HTTP error 503[\s\S]*garbage collection is deleting[\s\S]*retrying in/, 'Nix saw the 503 and retried')
  t.match(narinfoPuts((await hasty.app.inject({ url: '/metrics' })).body), [/status="503"\} 1$/], 'one 503; the retry never sent its body')
})

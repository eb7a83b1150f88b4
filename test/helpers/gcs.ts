import { createRequire } from 'node:module'
import { freePort } from './ports.ts'
import { tempDir } from './trees.ts'

const require = createRequire(import.meta.url)
const noop = (): Promise<void> => Promise.resolve()

interface Emulator {
  start(): Promise<void>
  stop(): Promise<void>
  _rulesManager: { start(): Promise<void>; stop(): Promise<void> }
}

export interface GcsServer {
  apiEndpoint: string
  project: string
}

/**
 * Google's Storage emulator (from firebase-tools, pinned) in this process. Its security
 * rules need a Java runtime; the GCS JSON API never consults them, so they are no-ops.
 * It writes blobs under TMPDIR, so each test gets its own.
 */
export async function startGcs(t: { teardown: (fn: () => Promise<void>) => void }): Promise<GcsServer> {
  process.env.TMPDIR = await tempDir(t, 'nixcas-gcs-')
  const runtime = require('firebase-tools/lib/emulator/storage/rules/runtime') as { StorageRulesRuntime: { prototype: { start: unknown; stop: unknown } } }
  runtime.StorageRulesRuntime.prototype.start = noop
  runtime.StorageRulesRuntime.prototype.stop = noop
  const { StorageEmulator } = require('firebase-tools/lib/emulator/storage') as { StorageEmulator: new (args: Record<string, unknown>) => Emulator }
  const { EmulatorRegistry } = require('firebase-tools/lib/emulator/registry') as { EmulatorRegistry: { start(emulator: Emulator): Promise<void>; stop(name: string): Promise<void> } }
  const project = 'demo-test'
  const port = await freePort()
  const emulator = new StorageEmulator({
    projectId: project,
    host: '127.0.0.1',
    port,
    rules: { name: 'storage.rules', content: "rules_version = '2'; service firebase.storage { match /b/{bucket}/o { match /{all=**} { allow read, write: if true; } } }" },
    auto_download: false,
  })
  emulator._rulesManager.start = noop
  emulator._rulesManager.stop = noop
  await EmulatorRegistry.start(emulator)
  t.teardown(() => EmulatorRegistry.stop('storage'))
  return { apiEndpoint: `http://127.0.0.1:${port}`, project }
}

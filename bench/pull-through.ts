/**
 * Pull-through, side by side in one run: a NAR downloaded straight from nginx (serving a
 * binary cache directory with sendfile), the first download of it through nixcas (fetched
 * from that nginx, decoded, checked and stored as it is served), and a second one (local).
 * Upstream NAR files uncompressed and zstd. Also the bytes nixcas stored against the
 * upstream's file. The tree is BENCH_TREE (default /usr/lib/node_modules).
 */
import { readdirSync, statSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { dumpPath } from '../src/fs/dump-path.ts'
import { writeNar } from '../src/nix/nar-writer.ts'
import { formatPublicKey, generateSecretKey } from '../src/nix/signing.ts'
import { serve } from '../test/helpers/nix-client.ts'
import { collect } from '../test/helpers/streams.ts'
import { initCache, publish } from '../test/helpers/upstream-cache.ts'
import { Cleanup, timed } from './lib/procs.ts'
import { startNginx } from './shootout-servers.ts'

/** Bytes a GET's body has, read to the end and dropped. */
async function drain(url: string): Promise<number> {
  const response = await fetch(url, { headers: { 'accept-encoding': 'identity' } })
  if (response.status !== 200 || !response.body) throw new Error(`GET ${url}: ${response.status}`)
  let bytes = 0
  for await (const chunk of response.body as AsyncIterable<Uint8Array>) bytes += chunk.length
  return bytes
}

function treeBytes(dir: string): number {
  let total = 0
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) if (entry.isFile()) total += statSync(join(entry.parentPath, entry.name)).size
  return total
}

const mbps = (bytes: number, seconds: number): string => `${(bytes / seconds / 1e6).toFixed(0)} MB/s`

export async function benchPullThrough(): Promise<void> {
  const cleanup = new Cleanup()
  const uninstall = cleanup.installSignalHandlers()
  const dir = await mkdtemp(join(tmpdir(), 'nixcas-bench-pull-'))
  cleanup.teardown(() => rm(dir, { recursive: true, force: true }))
  try {
    const nar = await collect(writeNar(dumpPath(process.env.BENCH_TREE ?? '/usr/lib/node_modules')))
    const key = generateSecretKey('bench-upstream-1')
    const root = join(dir, 'upstream')
    await initCache(root)
    const nginx = await startNginx(cleanup, dir, root, root)
    console.log(`NAR of ${(nar.length / 1e6).toFixed(1)} MB`)
    console.log('upstream file | direct from nginx | first through nixcas | second through nixcas | first/direct | stored / upstream file')
    for (const method of ['none', 'zstd'] as const) {
      // A nixcas with a store of its own per method, so the first download stores everything.
      const store = join(dir, `nixcas-${method}`)
      const { url } = await serve(cleanup, {
        stores: { stores: {}, root: `file://${store}` },
        upstreams: [{ url: `${nginx.staticUrl}/`, publicKeys: [formatPublicKey(key.publicKey)], priority: 50, timeout: 30_000, allowUnsigned: false }],
      })
      const path = await publish(root, nar, method, key)
      const narinfo = await (await fetch(`${url}/${path.hash}.narinfo`)).text()
      const fileUrl = /^URL: (.*)$/m.exec(await (await fetch(`${nginx.staticUrl}/${path.hash}.narinfo`)).text())?.[1] ?? ''
      const ourUrl = /^URL: (.*)$/m.exec(narinfo)?.[1] ?? ''
      const direct = await timed(() => drain(`${nginx.staticUrl}/${fileUrl}`))
      const first = await timed(() => drain(`${url}/${ourUrl}`))
      const second = await timed(() => drain(`${url}/${ourUrl}`))
      const stored = treeBytes(store)
      console.log(
        `${method.padEnd(13)} | ${mbps(nar.length, direct).padStart(17)} | ${mbps(nar.length, first).padStart(20)} | ${mbps(nar.length, second).padStart(21)} | ${(direct / first).toFixed(2).padStart(12)} | ${(stored / path.fileSize).toFixed(2)}`,
      )
    }
    console.log('(MB/s of NAR bytes; "direct" for zstd is the compressed file, not decoded)')
  } finally {
    await cleanup.run()
    uninstall()
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await benchPullThrough()

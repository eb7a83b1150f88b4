/**
 * nixcas over HTTP beside nginx serving the same bytes from a file (sendfile), in one
 * run: a whole NAR with curl, and narinfo requests per second with wrk.
 *   npm run bench -- http
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { buildApp } from '../src/app.ts'
import { resolveServerConfig } from '../src/config.ts'
import { dumpPath } from '../src/fs/dump-path.ts'
import { writeNar } from '../src/nix/nar-writer.ts'
import { encodeNixbase32 } from '../src/nix/nixbase32.ts'
import { appOptionsFrom } from '../src/server.ts'
import { pino } from 'pino'
import { MB, makeBenchTree, onPath, report } from './lib.ts'

const run = (command: string, args: string[]): Promise<string> =>
  new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()))
    child.on('error', reject)
    child.on('close', (code) => (code === 0 ? resolve(output) : reject(new Error(`${command} exited ${code}: ${output}`))))
  })

/** Best download speed of `runs` curl fetches, in MB/s. */
async function curlSpeed(url: string, runs = 5): Promise<number> {
  let best = 0
  for (let index = 0; index < runs; index++) {
    const speed = Number(await run('curl', ['-s', '-o', '/dev/null', '-w', '%{speed_download}', url]))
    best = Math.max(best, speed / MB)
  }
  return best
}

async function wrkRate(url: string): Promise<number> {
  const output = await run('wrk', ['-t1', '-c32', '-d5s', url])
  return Number(/Requests\/sec:\s+([\d.]+)/.exec(output)?.[1] ?? 0)
}

async function startNginx(root: string, dir: string): Promise<{ url: string; process: ChildProcess }> {
  const port = 20000 + Math.floor(Math.random() * 20000)
  await mkdir(join(dir, 'nginx', 'logs'), { recursive: true })
  const conf = join(dir, 'nginx', 'nginx.conf')
  await writeFile(conf, `daemon off; user root; worker_processes 1; error_log stderr error; pid ${join(dir, 'nginx', 'pid')};
events { worker_connections 1024; }
http { access_log off; sendfile on; tcp_nopush on; default_type application/octet-stream;
  client_body_temp_path ${dir}/nginx/body; proxy_temp_path ${dir}/nginx/proxy; fastcgi_temp_path ${dir}/nginx/fcgi; uwsgi_temp_path ${dir}/nginx/uwsgi; scgi_temp_path ${dir}/nginx/scgi;
  server { listen 127.0.0.1:${port}; root ${root}; } }
`)
  const child = spawn('nginx', ['-c', conf, '-p', join(dir, 'nginx')], { stdio: 'inherit' })
  await new Promise((resolve) => setTimeout(resolve, 500))
  return { url: `http://127.0.0.1:${port}`, process: child }
}

export async function benchHttp(): Promise<void> {
  if (!onPath('curl') || !onPath('nginx')) {
    console.log('http: needs curl and nginx (apt-get install nginx-light curl wrk)')
    return
  }
  const dir = await mkdtemp(join(tmpdir(), 'nixcas-bench-http-'))
  let nginx: ChildProcess | undefined
  try {
    const tree = join(dir, 'tree')
    await makeBenchTree(tree)
    const files = join(dir, 'files')
    await mkdir(join(files, 'nar'), { recursive: true })
    const narFile = join(files, 'nar', 'tree.nar')
    await pipeline(Readable.from(writeNar(dumpPath(tree))), createWriteStream(narFile))
    const nar = await readFile(narFile)
    const narHash = encodeNixbase32(createHash('sha256').update(nar).digest())
    const storeHash = '0'.repeat(31) + '1'
    const narinfo = `StorePath: /nix/store/${storeHash}-bench\nURL: nar/${narHash}.nar\nCompression: none\nNarHash: sha256:${narHash}\nNarSize: ${nar.length}\nReferences: \n`
    await writeFile(join(files, `${storeHash}.narinfo`), narinfo)
    const started = await startNginx(files, dir)
    nginx = started.process
    const nginxUrl = started.url

    const config = { ...(await resolveServerConfig({ store: `file://${join(dir, 'store')}` }, {})), logLevel: 'warn' }
    const logger = pino({ level: 'warn' })
    const app = await buildApp(await appOptionsFrom(config, logger), { loggerInstance: logger })
    await app.listen({ host: '127.0.0.1', port: 0 })
    const nixcasUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
    await fetch(`${nixcasUrl}/nar/upload.nar`, { method: 'PUT', body: nar })
    await fetch(`${nixcasUrl}/${storeHash}.narinfo`, { method: 'PUT', body: narinfo })

    const rows: Record<string, string | number>[] = []
    const nginxNar = await curlSpeed(`${nginxUrl}/nar/tree.nar`)
    const nixcasNar = await curlSpeed(`${nixcasUrl}/nar/${narHash}.nar`)
    rows.push({ what: `GET ${(nar.length / MB).toFixed(0)} MB NAR, curl, MB/s`, nginx: Math.round(nginxNar), nixcas: Math.round(nixcasNar), 'nixcas / nginx': (nixcasNar / nginxNar).toFixed(2) })
    if (onPath('wrk')) {
      const nginxInfo = await wrkRate(`${nginxUrl}/${storeHash}.narinfo`)
      const nixcasInfo = await wrkRate(`${nixcasUrl}/${storeHash}.narinfo`)
      rows.push({ what: 'GET narinfo, wrk -t1 -c32, req/s', nginx: Math.round(nginxInfo), nixcas: Math.round(nixcasInfo), 'nixcas / nginx': (nixcasInfo / nginxInfo).toFixed(2) })
      const nixcasMiss = await wrkRate(`${nixcasUrl}/${'0'.repeat(32)}.narinfo`)
      rows.push({ what: 'GET missing narinfo (404), req/s', nginx: '-', nixcas: Math.round(nixcasMiss), 'nixcas / nginx': '-' })
    }
    await app.close()
    console.log('nixcas renders the NAR from its fs store (page cache warm); nginx sends the NAR file')
    report(rows)
  } finally {
    nginx?.kill()
    await rm(dir, { recursive: true, force: true })
  }
}

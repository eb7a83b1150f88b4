import { spawn, spawnSync } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { freePort } from './ports.ts'

export interface Nginx {
  url: string
  /** The path of every request so far, as nginx logged it (`GET /nar/….nar.xz 200`). */
  requests(): Promise<string[]>
  /** Stops it (idempotent); later requests to `url` are refused. */
  stop(): Promise<void>
}

/** `skip` for tests that need nginx (Debian nginx-light); under CI they always run. */
export const skipWithoutNginx: string | false =
  spawnSync('nginx', ['-v']).status === 0 || process.env.CI ? false : 'nginx is not installed (apt-get install nginx-light): skipping tests against a real upstream'

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

async function answers(url: string): Promise<boolean> {
  try {
    return (await fetch(url, { signal: AbortSignal.timeout(2_000) })).status === 200
  } catch {
    return false
  }
}

/**
 * nginx (Debian nginx-light) serving `root` as a static binary cache on a free port, with
 * an access log of one `METHOD URI STATUS` line per request (written as each ends), so a
 * test can count what reached it. Stopped in teardown. A port taken between the probe and
 * the listen is retried on another.
 */
export async function startNginx(t: { teardown: (fn: () => Promise<void>) => void }, dir: string, root: string): Promise<Nginx> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    const accessLog = join(dir, `access-${port}.log`)
    const conf = join(dir, `nginx-${port}.conf`)
    const temp = (name: string): string => `${name}_temp_path ${join(dir, `${name}-${port}`)};`
    await writeFile(
      conf,
      `daemon off; master_process on; worker_processes 1; ${process.getuid?.() === 0 ? 'user root;' : ''}
error_log stderr warn; pid ${join(dir, `nginx-${port}.pid`)};
events { worker_connections 1024; }
http {
  log_format counted '$request_method $uri $status';
  access_log ${accessLog} counted; sendfile on;
  default_type application/octet-stream; types { text/x-nix-narinfo narinfo; }
  client_body_temp_path ${join(dir, `body-${port}`)}; ${temp('proxy')} ${temp('fastcgi')} ${temp('uwsgi')} ${temp('scgi')}
  server { listen 127.0.0.1:${port}; root ${root}; }
}
`,
    )
    const child = spawn('nginx', ['-p', dir, '-c', conf, '-e', 'stderr'], { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    let running = true
    void exited.then(() => (running = false))
    const stop = async (): Promise<void> => {
      if (!running) return
      child.kill('SIGTERM')
      const done = await Promise.race([exited.then(() => true), sleep(10_000).then(() => false)])
      if (!done) child.kill('SIGKILL')
      await exited
    }
    t.teardown(stop)
    const url = `http://127.0.0.1:${port}`
    for (let waited = 0; running && waited < 15_000 && !(await answers(`${url}/nix-cache-info`)); waited += 100) await sleep(100)
    if (running && (await answers(`${url}/nix-cache-info`))) {
      const requests = async (): Promise<string[]> => (await readFile(accessLog, 'utf8').catch(() => '')).split('\n').filter((line) => line.length > 0)
      return { url, requests, stop }
    }
    await stop()
    if (attempt < 3 && stderr.includes('Address already in use')) continue
    throw new Error(`nginx did not start on port ${port}: ${stderr}`)
  }
}

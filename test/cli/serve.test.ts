import { spawn } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { tempDir } from '../helpers/trees.ts'

const cli = new URL('../../src/cli.ts', import.meta.url).pathname

/** Runs `nixcas …` as a user would; resolves with its exit code and output once it exits. */
function run(args: string[], until?: (output: string) => boolean): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', cli, ...args], { env: { ...process.env, NIXCAS_LOG_LEVEL: 'info' } })
    let output = ''
    let stopped = false
    const take = (chunk: Buffer): void => {
      output += chunk.toString()
      if (!stopped && until?.(output)) {
        stopped = true
        child.kill('SIGTERM')
      }
    }
    child.stdout.on('data', take)
    child.stderr.on('data', take)
    child.on('exit', (code) => resolve({ code, output }))
  })
}

t.test('start-up errors are clear and exit non-zero', async (t) => {
  const dir = await tempDir(t)
  await writeFile(join(dir, 'bad.yaml'), 'stores:\n  a: { type: retry, store: b }\nroot: a\n')
  await writeFile(join(dir, 'bad.key'), 'not a key')
  const cases: [string[], RegExp][] = [
    [['serve', '--config', join(dir, 'bad.yaml')], /store "a", field "store": no store named "b"/],
    [['serve', '--store', 'ftp://nowhere'], /unknown scheme "ftp"/],
    [['serve', '--store', 'memory://', '--signing-key', join(dir, 'bad.key')], /signing key .*bad\.key/],
    [['serve', '--store', 'memory://', '--signing-key', join(dir, 'missing.key')], /signing key .*missing\.key: ENOENT/],
    [['serve', '--store', 'memory://', '--listen', 'here'], /field "listen"/],
  ]
  for (const [args, message] of cases) {
    const { code, output } = await run(args)
    t.equal(code, 1, `${args.join(' ')}: exit 1`)
    t.match(output, message)
  }
})

t.test('serve starts, logs its stores, answers, and stops gracefully on SIGTERM', async (t) => {
  // Port 0: the kernel picks a free port, named in the "listening" line; no port can be taken in between.
  let answer: Promise<string> | undefined
  const { code, output } = await run(['serve', '--store', 'memory://', '--listen', '127.0.0.1:0'], (text) => {
    const port = /Server listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(text)?.[1]
    if (answer === undefined && port !== undefined) {
      answer = fetch(`http://127.0.0.1:${port}/nix-cache-info`).then((response) => response.text())
      return false
    }
    return text.includes('"url":"/nix-cache-info"')
  })
  t.equal(await answer, 'StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n')
  t.equal(code, 0, 'clean exit')
  t.match(output, /store composition, root \\"memory:\/\/\\"/)
  t.match(output, /anonymous writes are allowed/)
  t.match(output, /"method":"GET","url":"\/nix-cache-info","status":200/)
  t.match(output, /shutting down/)
  t.match(output, /"msg":"stopped"/)
})

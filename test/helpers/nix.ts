import { execFile, spawnSync } from 'node:child_process'
import { promisify } from 'node:util'

const execFileAsync = promisify(execFile)

/** Root without a daemon, as on CI machines: no sandbox, no build users. */
export const nixEnv: NodeJS.ProcessEnv = {
  ...process.env,
  NIX_CONFIG: ['experimental-features = nix-command', 'sandbox = false', 'build-users-group ='].join('\n'),
}

export const hasNix = spawnSync('nix', ['--version'], { env: nixEnv }).status === 0

/**
 * `skip` option for tests that drive the real Nix client. Locally they skip with a reason;
 * under CI they always run, so a missing nix fails loudly instead of passing quietly.
 */
export const skipWithoutNix: string | false =
  hasNix || process.env.CI ? false : 'nix is not installed (apt-get install nix-bin): skipping tests against the real Nix client'

export async function nix(command: string, args: string[], input?: { cwd?: string }): Promise<Buffer> {
  const { stdout } = await execFileAsync(command, args, {
    env: nixEnv,
    encoding: 'buffer',
    maxBuffer: 2 ** 31 - 1,
    cwd: input?.cwd,
  })
  return stdout
}

export async function nixText(command: string, args: string[]): Promise<string> {
  return (await nix(command, args)).toString('utf8').trim()
}

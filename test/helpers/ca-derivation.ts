import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { nixEnv } from './nix.ts'

const execFileAsync = promisify(execFile)

// Two content-addressed derivations built with /bin/sh alone (no nixpkgs): `top` refers to
// `dep`, so Nix 2.8 gives top's realisation a non-empty `dependentRealisations`, and top is
// built from a resolved derivation (its narinfo's Deriver differs from the evaluated drv).
const CA_NIX = `{ seed }:
let
  dep = derivation {
    name = "nixcas-ca-dep"; system = builtins.currentSystem; builder = "/bin/sh";
    args = [ "-c" "echo content-addressed dependency \${seed} > $out" ];
    __contentAddressed = true; outputHashMode = "recursive"; outputHashAlgo = "sha256";
  };
in derivation {
  name = "nixcas-ca"; system = builtins.currentSystem; builder = "/bin/sh";
  args = [ "-c" "echo \${dep} > $out" ];
  __contentAddressed = true; outputHashMode = "recursive"; outputHashAlgo = "sha256";
}
`

export interface CaNixOptions {
  /** `secret-key-files`: Nix then signs the realisations it records when it builds. */
  secretKeyFile?: string
  /**
   * `XDG_CACHE_HOME`. Nix caches narinfos *and realisations* it has seen per store URL;
   * give a fresh directory when a cache's files changed behind Nix's back.
   */
  cacheHome?: string
}

/** Nix as root without a daemon, with `ca-derivations` and no default substituter (no network here). */
export function caNixEnv(options: CaNixOptions = {}): NodeJS.ProcessEnv {
  const config = ['experimental-features = nix-command ca-derivations', 'sandbox = false', 'build-users-group =', 'substituters =']
  if (options.secretKeyFile !== undefined) config.push(`secret-key-files = ${options.secretKeyFile}`)
  const env: NodeJS.ProcessEnv = { ...nixEnv, NIX_CONFIG: config.join('\n') }
  if (options.cacheHome !== undefined) env.XDG_CACHE_HOME = options.cacheHome
  return env
}

export async function caNix(command: string, args: string[], options: CaNixOptions = {}): Promise<string> {
  const { stdout } = await execFileAsync(command, args, { env: caNixEnv(options), encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
  return stdout.trim()
}

/** A realisation as `nix realisation info --json` (Nix 2.8) prints it. */
export interface RealisationInfo {
  id: string
  outPath: string
  signatures: string[]
  dependentRealisations: Record<string, string>
}

export interface CaClosure {
  /** Arguments that name top as an installable: `-f <file> --argstr seed <seed>`. */
  installable: string[]
  top: string
  dep: string
  /** top's realisation, as recorded in the local store. */
  realisation: RealisationInfo
}

/**
 * Builds a fresh pair of content-addressed derivations (new paths each call) into the local
 * /nix/store. With `secretKeyFile`, the realisations Nix records carry its signature.
 */
export async function buildCaDerivation(dir: string, options: Pick<CaNixOptions, 'secretKeyFile'> = {}): Promise<CaClosure> {
  const file = join(dir, 'ca.nix')
  await writeFile(file, CA_NIX)
  const cacheHome = join(dir, 'xdg-build')
  await mkdir(cacheHome, { recursive: true })
  const installable = ['-f', file, '--argstr', 'seed', randomBytes(8).toString('hex')]
  const built = JSON.parse(await caNix('nix', ['build', '--no-link', '--json', ...installable], { ...options, cacheHome })) as { outputs: { out?: string } }[]
  const top = built[0]?.outputs.out
  if (top === undefined) throw new Error(`nix build printed no output path: ${JSON.stringify(built)}`)
  const realisations = JSON.parse(await caNix('nix', ['realisation', 'info', '--json', ...installable], { cacheHome })) as RealisationInfo[]
  const realisation = realisations[0]
  if (realisations.length !== 1 || realisation === undefined || `/nix/store/${realisation.outPath}` !== top) {
    throw new Error(`nix realisation info does not describe ${top}: ${JSON.stringify(realisations)}`)
  }
  const dep = Object.values(realisation.dependentRealisations)[0]
  if (dep === undefined) throw new Error(`${top} has no dependent realisation`)
  return { installable, top, dep: `/nix/store/${dep}`, realisation }
}

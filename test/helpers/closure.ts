import { randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { nixText } from './nix.ts'

// Two derivations built with /bin/sh alone (no nixpkgs): `top` refers to `dep`, so the
// closure has a reference for narinfos and signatures to carry.
const CLOSURE_NIX = `{ seed }:
let
  dep = derivation {
    name = "nixcas-dep"; system = builtins.currentSystem; builder = "/bin/sh";
    args = [ "-c" "echo dependency \${seed} > $out" ];
  };
in derivation {
  name = "nixcas-top"; system = builtins.currentSystem; builder = "/bin/sh";
  args = [ "-c" "/bin/mkdir -p $out/bin $out/share; echo \${dep} > $out/share/ref; echo '#!/bin/sh' > $out/bin/run; /bin/chmod +x $out/bin/run; /bin/ln -s ../share/ref $out/link; /usr/bin/head -c 300000 /dev/urandom > $out/share/blob" ];
}
`

export interface Closure {
  top: string
  dep: string
  /** Every path of the closure, dependencies first. */
  paths: string[]
}

/** Builds a fresh closure (new store paths each call) into the local /nix/store. */
export async function buildClosure(dir: string): Promise<Closure> {
  const file = join(dir, 'closure.nix')
  await writeFile(file, CLOSURE_NIX)
  const top = await nixText('nix-build', [file, '--no-out-link', '--argstr', 'seed', randomBytes(8).toString('hex')])
  const paths = (await nixText('nix-store', ['--query', '--requisites', top])).split('\n')
  const dep = paths.find((path) => path.endsWith('-nixcas-dep'))
  if (dep === undefined) throw new Error(`closure of ${top} lacks its dependency`)
  return { top, dep, paths }
}

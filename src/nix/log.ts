import { NixcasError } from '../errors.ts'
import { parseStorePathBase, type StorePath } from './store-path.ts'

/**
 * Build logs live at `log/<drv basename>`: Nix's `BinaryCacheStore::addBuildLog` uploads
 * `"log/" + drvPath.to_string()` (asserting the path is a derivation) with
 * `Content-Type: text/plain; charset=utf-8`, and `getBuildLog` reads the same name, going
 * through the narinfo's `Deriver` when asked about an output. So a log name is always a
 * derivation's store path basename, `<32 nixbase32>-<name>.drv`: no `/`, no `..`.
 */
export function parseLogName(name: string): StorePath {
  const path = parseStorePathBase(name)
  if (!path.name.endsWith('.drv')) throw new NixcasError('BAD_STORE_PATH', `log name ${JSON.stringify(name.slice(0, 120))} is not a derivation (<hash>-<name>.drv)`)
  return path
}

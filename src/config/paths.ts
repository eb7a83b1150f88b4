import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/** A file at the top of this checkout or package, from src/ (tsx) or dist/src/ (built). */
function packageFile(name: string): string {
  return fileURLToPath(new URL(`${import.meta.url.includes('/dist/') ? '../../../' : '../../'}${name}`, import.meta.url))
}

/** config/default.yaml: one fs store under ./data. */
export const DEFAULT_CONFIG_FILE = packageFile('config/default.yaml')

/** The version in package.json, for `nixcas --version`. */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(packageFile('package.json'), 'utf8')) as { version: string }).version
}

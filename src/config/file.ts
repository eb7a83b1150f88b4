import { readFile } from 'node:fs/promises'
import { extname } from 'node:path'
import { parseDocument } from 'yaml'
import { NixcasError } from '../errors.ts'
import type { StoreConfig } from '../stores/compose.ts'

/** Reads a YAML (or JSON) configuration file into a plain mapping. */
export async function readConfigFile(path: string): Promise<Record<string, unknown>> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (cause) {
    throw new NixcasError('BAD_CONFIG', `cannot read configuration ${path}: ${(cause as Error).message}`, { cause })
  }
  return parseConfigText(text, path)
}

export function parseConfigText(text: string, source: string): Record<string, unknown> {
  let value: unknown
  if (extname(source) === '.json') {
    try {
      value = JSON.parse(text)
    } catch (cause) {
      throw new NixcasError('BAD_CONFIG', `${source}: ${(cause as Error).message}`, { cause })
    }
  } else {
    const document = parseDocument(text, { prettyErrors: true, uniqueKeys: true })
    const error = document.errors[0]
    if (error) throw new NixcasError('BAD_CONFIG', `${source}: ${error.message}`, { cause: error })
    value = document.toJS()
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new NixcasError('BAD_CONFIG', `${source}: expected a mapping at the top level`)
  return value as Record<string, unknown>
}

/** The store part of a configuration file alone: `stores` (named instances) and `root`. */
export function storeConfigOf(document: Record<string, unknown>, source: string): StoreConfig {
  const { stores = {}, root } = document
  if (!stores || typeof stores !== 'object' || Array.isArray(stores)) throw new NixcasError('BAD_CONFIG', `${source}: "stores" must be a mapping of named store instances`)
  if (root === undefined) throw new NixcasError('BAD_CONFIG', `${source}: "root" must name the store that serves requests`)
  return { stores: stores as StoreConfig['stores'], root: root as StoreConfig['root'] }
}

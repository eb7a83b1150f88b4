import { composeStores, type ComposeOptions, type StoreStack } from '../stores/compose.ts'
import { loadKeys, type Keys } from './keys.ts'
import type { ServerConfig } from './server-config.ts'

export interface Prepared {
  keys: Keys
  stack: StoreStack
}

/**
 * Every check `nixcas serve` makes before it listens, beyond resolving the settings:
 * keys read and parsed, and the store composition built (which touches no store). Both
 * `serve` and `config check` go through here, so the one accepts what the other does.
 * The caller closes the stack.
 */
export async function prepareServer(config: ServerConfig, options: Omit<ComposeOptions, 'baseDir'>): Promise<Prepared> {
  const keys = await loadKeys(config)
  const stack = composeStores(config.stores, { ...options, baseDir: config.baseDir })
  return { keys, stack }
}

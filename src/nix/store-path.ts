import { NixcasError } from '../errors.ts'
import { isNixbase32 } from './nixbase32.ts'

export const DEFAULT_STORE_DIR = '/nix/store'
export const STORE_PATH_HASH_LENGTH = 32
/** Nix limits names so that a store path basename fits in 255 bytes with room for suffixes. */
export const STORE_PATH_NAME_MAX = 211

const NAME_CHARS = /^[A-Za-z0-9+\-._?=]+$/

export interface StorePath {
  /** 32 nixbase32 characters. */
  readonly hash: string
  readonly name: string
}

export function isStorePathHash(text: string): boolean {
  return text.length === STORE_PATH_HASH_LENGTH && isNixbase32(text)
}

export function checkStorePathName(name: string): void {
  if (name.length === 0) throw new NixcasError('BAD_STORE_PATH', 'store path name is empty')
  if (name.length > STORE_PATH_NAME_MAX) {
    throw new NixcasError('BAD_STORE_PATH', `store path name is longer than ${STORE_PATH_NAME_MAX} characters`)
  }
  if (name.startsWith('.')) throw new NixcasError('BAD_STORE_PATH', `store path name ${JSON.stringify(name)} starts with a dot`)
  if (!NAME_CHARS.test(name)) {
    throw new NixcasError('BAD_STORE_PATH', `store path name ${JSON.stringify(name)} has a character outside [A-Za-z0-9+-._?=]`)
  }
}

/** Parses `<hash>-<name>`, the basename form used in narinfo References and Deriver. */
export function parseStorePathBase(base: string): StorePath {
  const hash = base.slice(0, STORE_PATH_HASH_LENGTH)
  if (!isStorePathHash(hash) || base[STORE_PATH_HASH_LENGTH] !== '-') {
    throw new NixcasError('BAD_STORE_PATH', `${JSON.stringify(base)} is not <32 nixbase32 characters>-<name>`)
  }
  const name = base.slice(STORE_PATH_HASH_LENGTH + 1)
  checkStorePathName(name)
  return { hash, name }
}

/** Parses a full store path such as `/nix/store/<hash>-<name>`. */
export function parseStorePath(path: string, storeDir: string = DEFAULT_STORE_DIR): StorePath {
  const prefix = `${storeDir}/`
  if (!path.startsWith(prefix)) {
    throw new NixcasError('BAD_STORE_PATH', `${JSON.stringify(path)} is not in the store directory ${storeDir}`)
  }
  return parseStorePathBase(path.slice(prefix.length))
}

export function storePathBase(path: StorePath): string {
  return `${path.hash}-${path.name}`
}

export function formatStorePath(path: StorePath, storeDir: string = DEFAULT_STORE_DIR): string {
  return `${storeDir}/${storePathBase(path)}`
}

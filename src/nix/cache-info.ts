import { NixcasError } from '../errors.ts'
import { DEFAULT_STORE_DIR } from './store-path.ts'

/** The contents of `/nix-cache-info`. */
export interface CacheInfo {
  storeDir: string
  wantMassQuery: boolean
  priority: number
}

export function renderCacheInfo(info: CacheInfo): string {
  return `StoreDir: ${info.storeDir}\nWantMassQuery: ${info.wantMassQuery ? 1 : 0}\nPriority: ${info.priority}\n`
}

export function parseCacheInfo(text: string): CacheInfo {
  const info: CacheInfo = { storeDir: DEFAULT_STORE_DIR, wantMassQuery: false, priority: 50 }
  text.split('\n').forEach((line, index) => {
    if (line === '') return
    const colon = line.indexOf(':')
    if (colon <= 0) throw new NixcasError('BAD_CACHE_INFO', `nix-cache-info line ${index + 1}: expected "Key: value"`)
    const key = line.slice(0, colon)
    const value = line.slice(colon + 1).trim()
    if (key === 'StoreDir') {
      if (!value.startsWith('/')) throw new NixcasError('BAD_CACHE_INFO', `nix-cache-info line ${index + 1}: StoreDir must be absolute`)
      info.storeDir = value
    } else if (key === 'WantMassQuery') {
      if (value !== '0' && value !== '1') throw new NixcasError('BAD_CACHE_INFO', `nix-cache-info line ${index + 1}: WantMassQuery must be 0 or 1`)
      info.wantMassQuery = value === '1'
    } else if (key === 'Priority') {
      if (!/^[0-9]{1,9}$/.test(value)) throw new NixcasError('BAD_CACHE_INFO', `nix-cache-info line ${index + 1}: Priority must be a non-negative integer`)
      info.priority = Number(value)
    }
  })
  return info
}

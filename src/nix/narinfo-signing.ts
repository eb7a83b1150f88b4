import type { NarInfo } from './narinfo.ts'
import { fingerprintPath, signFingerprint, verifyFingerprint, type PublicKey, type SecretKey } from './signing.ts'
import { DEFAULT_STORE_DIR } from './store-path.ts'

export function narInfoFingerprint(info: NarInfo, storeDir: string = DEFAULT_STORE_DIR): string {
  return fingerprintPath(info.storePath, info.narHash, info.narSize, info.references.map((ref) => `${storeDir}/${ref}`))
}

/** Adds one signature per key, replacing an older signature by the same key name. */
export function signNarInfo(info: NarInfo, keys: readonly SecretKey[], storeDir: string = DEFAULT_STORE_DIR): NarInfo {
  const fingerprint = narInfoFingerprint(info, storeDir)
  const names = new Set(keys.map((key) => key.name))
  const kept = info.signatures.filter((signature) => !names.has(signature.slice(0, signature.indexOf(':'))))
  return { ...info, signatures: [...kept, ...keys.map((key) => signFingerprint(key, fingerprint))] }
}

/** The signatures on `info` that one of `keys` made, valid for its current contents. */
export function validNarInfoSignatures(info: NarInfo, keys: readonly PublicKey[], storeDir: string = DEFAULT_STORE_DIR): string[] {
  const fingerprint = narInfoFingerprint(info, storeDir)
  return info.signatures.filter((signature) => verifyFingerprint(keys, fingerprint, signature))
}

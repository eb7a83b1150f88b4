import { readFile } from 'node:fs/promises'
import { NixcasError } from '../errors.ts'
import { parsePublicKey, parseSecretKey, type PublicKey, type SecretKey } from '../nix/signing.ts'

export interface Keys {
  signingKeys: SecretKey[]
  trustedUploadKeys: PublicKey[]
}

const bad = (field: string, message: string, cause: unknown): NixcasError =>
  new NixcasError('BAD_CONFIG', `configuration field "${field}": ${message}`, { cause })

async function readSigningKey(file: string, index: number): Promise<SecretKey> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (cause) {
    throw bad(`signingKeys[${index}]`, `signing key ${file}: ${(cause as Error).message}`, cause)
  }
  try {
    return parseSecretKey(text)
  } catch (cause) {
    throw bad(`signingKeys[${index}]`, `signing key ${file}: ${(cause as Error).message}`, cause)
  }
}

/**
 * Reads and parses the signing key files and trusted upload keys, and checks that a
 * required upload signature has a key to be checked against.
 */
export async function loadKeys(config: { signingKeyFiles: readonly string[]; trustedUploadKeys: readonly string[]; requireUploadSignature: boolean }): Promise<Keys> {
  const signingKeys = await Promise.all(config.signingKeyFiles.map(readSigningKey))
  const trustedUploadKeys = config.trustedUploadKeys.map((text, index) => {
    try {
      return parsePublicKey(text)
    } catch (cause) {
      throw bad(`trustedUploadKeys[${index}]`, (cause as Error).message, cause)
    }
  })
  if (config.requireUploadSignature && trustedUploadKeys.length === 0) {
    throw new NixcasError('BAD_CONFIG', 'configuration field "requireUploadSignature": needs at least one key in "trustedUploadKeys"')
  }
  return { signingKeys, trustedUploadKeys }
}

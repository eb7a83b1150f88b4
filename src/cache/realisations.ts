import type { Cas } from '../cas/cas.ts'
import { NixcasError } from '../errors.ts'
import {
  buildTraceFingerprint,
  parseBuildTraceEntry,
  renderBuildTraceValue,
  signBuildTraceEntry,
  validBuildTraceSignatures,
  type BuildTraceEntry,
} from '../nix/build-trace.ts'
import { formatDoiPath, formatDrvOutputId, parseDrvOutputId, type BuildTraceKey, type DoiPath, type DrvOutputId } from '../nix/drv-output.ts'
import { parseRealisation, realisationFingerprint, renderRealisation, signRealisation, validRealisationSignatures, type Realisation } from '../nix/realisation.ts'
import type { PublicKey, SecretKey } from '../nix/signing.ts'
import { parseStorePathBase } from '../nix/store-path.ts'

export interface RealisationOptions {
  storeDir: string
  signingKeys: readonly SecretKey[]
  trustedUploadKeys: readonly PublicKey[]
  requireUploadSignature: boolean
  /** Replace a stored entry whose output path differs, instead of answering 409. */
  allowOverwrite: boolean
  /** Distinct signatures one entry may carry, ours included. */
  maxSignatures: number
}

/**
 * What content-addressed derivations' outputs turned out to be: realisations (Nix ≤ 2.34,
 * `realisations/<drv hash>!<output>.doi`) and build trace entries (Nix ≥ 2.35,
 * `build-trace-v2/<drv>/<output>.doi`).
 *
 * An entry is accepted only once what it points at is here: its output path's narinfo and,
 * for a realisation, the realisations it depends on. Nix 2.8 pushes in that order (the
 * paths, then the realisations, dependencies first), and a substituter that trusted an
 * entry pointing at nothing would fail halfway through a build. Entries are signed with the
 * server's keys like narinfos; an entry is immutable once stored (another output path for
 * the same derivation output is a 409 unless overwrites are allowed) but gains signatures
 * when it is uploaded again.
 */
export class Realisations {
  constructor(
    private readonly cas: Cas,
    private readonly options: RealisationOptions,
  ) {}

  /** Validates, checks, signs and stores an uploaded `.doi` body. */
  async put(path: DoiPath, text: string): Promise<void> {
    const limits = { maxSignatures: this.options.maxSignatures }
    if (path.layout === 'realisations') {
      const uploaded = parseRealisation(text, path.id, limits)
      this.checkUploadSignature(validRealisationSignatures(uploaded, this.options.trustedUploadKeys), path)
      await this.checkOutPath(uploaded.outPath, path)
      await this.checkDependencies(uploaded)
      const stored = await this.storedRealisation(path.id)
      const merged = this.merge(uploaded, stored, realisationFingerprint, path)
      await this.cas.putRealisation(path.id, renderRealisation(signRealisation(merged, this.options.signingKeys)))
    } else {
      const uploaded = parseBuildTraceEntry(text, path.key, limits)
      this.checkUploadSignature(validBuildTraceSignatures(uploaded, this.options.trustedUploadKeys), path)
      await this.checkOutPath(uploaded.outPath, path)
      const stored = await this.storedBuildTrace(path.key)
      const merged = this.merge(uploaded, stored, buildTraceFingerprint, path)
      await this.cas.putBuildTrace(path.key, renderBuildTraceValue(signBuildTraceEntry(merged, this.options.signingKeys)))
    }
  }

  /** The body served for `path`, signed by every configured key; undefined when absent. */
  async get(path: DoiPath): Promise<string | undefined> {
    if (path.layout === 'realisations') {
      const stored = await this.storedRealisation(path.id)
      if (stored === undefined) return undefined
      return renderRealisation(this.unsigned(stored.signatures) ? signRealisation(stored, this.options.signingKeys) : stored)
    }
    const stored = await this.storedBuildTrace(path.key)
    if (stored === undefined) return undefined
    return renderBuildTraceValue(this.unsigned(stored.signatures) ? signBuildTraceEntry(stored, this.options.signingKeys) : stored)
  }

  /** Whether some configured key has not signed yet (a key added after the upload). */
  private unsigned(signatures: readonly string[]): boolean {
    return this.options.signingKeys.some((key) => !signatures.some((signature) => signature.startsWith(`${key.name}:`)))
  }

  /** What is stored was checked on the way in; ours may carry our signatures beyond the upload bound. */
  private get storedLimits(): { maxSignatures: number } {
    return { maxSignatures: this.options.maxSignatures + this.options.signingKeys.length }
  }

  private async storedRealisation(id: DrvOutputId): Promise<Realisation | undefined> {
    const text = await this.cas.getRealisation(id)
    return text === undefined ? undefined : this.parseStored(() => parseRealisation(text, id, { ...this.storedLimits, maxDependencies: Number.MAX_SAFE_INTEGER }), `realisation ${formatDrvOutputId(id)}`)
  }

  private async storedBuildTrace(key: BuildTraceKey): Promise<BuildTraceEntry | undefined> {
    const text = await this.cas.getBuildTrace(key)
    return text === undefined ? undefined : this.parseStored(() => parseBuildTraceEntry(text, key, this.storedLimits), `build trace ${key.drvPath}/${key.outputName}`)
  }

  private parseStored<T>(parse: () => T, what: string): T {
    try {
      return parse()
    } catch (cause) {
      throw new NixcasError('CORRUPT_OBJECT', `stored ${what} is malformed`, { cause })
    }
  }

  private checkUploadSignature(valid: readonly string[], path: DoiPath): void {
    if (this.options.requireUploadSignature && valid.length === 0) {
      throw new NixcasError('FORBIDDEN', `${formatDoiPath(path)} carries no valid signature from a trusted key`)
    }
  }

  private async checkOutPath(outPath: string, path: DoiPath): Promise<void> {
    const info = await this.cas.getPathInfo(parseStorePathBase(outPath).hash)
    if (info?.storePath !== `${this.options.storeDir}/${outPath}`) {
      throw new NixcasError('BAD_REALISATION', `${formatDoiPath(path)}: output path ${outPath} is not in this cache; push the path before its realisation`)
    }
  }

  private async checkDependencies(realisation: Realisation): Promise<void> {
    for (const [id, outPath] of Object.entries(realisation.dependentRealisations)) {
      const dependency = await this.storedRealisation(parseDrvOutputId(id))
      if (dependency?.outPath !== outPath) {
        throw new NixcasError('BAD_REALISATION', `realisation ${formatDrvOutputId(realisation.id)} depends on ${id} → ${outPath}, which this cache does not hold; push it first`)
      }
    }
  }

  /**
   * The entry to store: the upload, or, when the same entry is already stored, the stored
   * one with the upload's signatures added (up to the bound, ours counted).
   */
  private merge<T extends Realisation | BuildTraceEntry>(uploaded: T, stored: T | undefined, fingerprint: (entry: T) => string, path: DoiPath): T {
    if (stored === undefined) return uploaded
    if (fingerprint(stored) !== fingerprint(uploaded)) {
      if (this.options.allowOverwrite) return uploaded
      const differs = stored.outPath === uploaded.outPath ? `with output path ${stored.outPath} but other dependencies` : `with output path ${stored.outPath}, not ${uploaded.outPath}`
      throw new NixcasError('CONFLICT', `${formatDoiPath(path)} is already stored ${differs}`)
    }
    const ours = new Set(this.options.signingKeys.map((key) => key.name))
    const theirs = [...new Set([...stored.signatures, ...uploaded.signatures])].filter((signature) => !ours.has(signature.slice(0, signature.indexOf(':'))))
    return { ...stored, signatures: theirs.slice(0, Math.max(0, this.options.maxSignatures - ours.size)) }
  }
}

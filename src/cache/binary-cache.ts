import { LRUCache } from 'lru-cache'
import { NixcasError } from '../errors.ts'
import type { CasNode } from '../castore/node.ts'
import type { PathInfo } from '../castore/path-info.ts'
import { storeNar, type IngestOptions, type IngestResult } from '../ingest/ingest.ts'
import type { IngestEvent } from '../ingest/events.ts'
import { parseNarEvents, type ParseOptions } from '../ingest/parse/parse.ts'
import { parseNarFileName, sniffGzip, type NarCompression } from '../ingest/decompress.ts'
import { renderCacheInfo } from '../nix/cache-info.ts'
import { formatNixHash, hashesEqual, type NixHash } from '../nix/hash.ts'
import { parseNarInfo, renderNarInfo, type NarInfo } from '../nix/narinfo.ts'
import { signNarInfo, validNarInfoSignatures } from '../nix/narinfo-signing.ts'
import { decodeNixbase32, encodeNixbase32 } from '../nix/nixbase32.ts'
import type { PublicKey, SecretKey } from '../nix/signing.ts'
import { STORE_PATH_HASH_LENGTH, isStorePathHash, parseStorePath } from '../nix/store-path.ts'
import { loadClosure } from '../render/closure.ts'
import { listingJson } from '../render/listing.ts'
import type { Cas, UploadRecord } from '../cas/cas.ts'
import { Lease } from '../cas/lease.ts'
import { BuildLogs } from './build-logs.ts'
import { DebugInfoIndex } from './debug-info.ts'
import { NAR_HASH } from './nar-service.ts'
import { Realisations } from './realisations.ts'

export interface BinaryCacheOptions {
  storeDir: string
  priority: number
  signingKeys: readonly SecretKey[]
  trustedUploadKeys: readonly PublicKey[]
  requireUploadSignature: boolean
  ingest: IngestOptions
  /** The CPU half of ingests (a worker pool in the server; in this thread when absent). */
  parser?: { parse(body: AsyncIterable<Uint8Array>, options: ParseOptions): AsyncIterable<IngestEvent>; close(): Promise<void> }
  narinfoCacheEntries: number
  /** Accept a narinfo (or realisation) that contradicts the stored one instead of answering 409. */
  allowNarinfoOverwrite: boolean
  /** Distinct signatures kept on a narinfo or realisation, ours included. */
  maxSignatures: number
  /** Largest build log accepted, uncompressed. */
  maxLogSize: number
  /** How long a narinfo PUT waits while a garbage collection deletes (ms); default GC_WAIT_MS. */
  gcWait?: number
  /** Asked for the narinfo of a path not stored here (pull-through): the upstream's narinfo and what to answer. */
  upstreams?: { lookup(hash: string): Promise<{ narinfo: NarInfo; text: string } | undefined> }
}


export interface NarFile {
  narHash: string
  compression: NarCompression
  /** The name is the NAR hash itself: whether the NAR exists is still to be seen. */
  byHash: boolean
}

/**
 * The body's bytes in buffers of their own: the worker pool takes (detaches) what it is
 * given, and a caller's buffer (a test's payload, a pooled slice) must stay usable. A body
 * read from a socket is handed over instead (`handOver`): each of its pieces is a buffer
 * nobody else holds, and copying them cost the main thread a pass over every byte.
 */
async function* owned(body: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  for await (const chunk of body) yield new Uint8Array(chunk)
}

/**
 * Bytes of rendered narinfos kept, whatever their count: a typical narinfo is under 1 KiB, so
 * this holds ~100,000 of them, and a few huge ones (many references) cannot grow memory.
 */
const NARINFO_CACHE_BYTES = 64 * 2 ** 20

const narHashOf = (base32: string): NixHash => ({ algorithm: 'sha256', digest: decodeNixbase32(base32, 32) })

function checkStorePathHash(hash: string): void {
  if (!isStorePathHash(hash)) throw new NixcasError('BAD_REQUEST', `${JSON.stringify(hash)} is not a store path hash (32 nixbase32 characters)`)
}

/**
 * The binary cache on top of the castore: narinfos (rendered, signed, cached), NAR
 * uploads and NAR lookups. Routes stay thin; the rules live here.
 */
export class BinaryCache {
  /**
   * Rendered narinfos by store path hash, as the bytes sent: a hit costs no rendering, no
   * encoding and no store read. Short-lived so replicas (and worker processes) converge.
   */
  private readonly narinfos: LRUCache<string, Buffer>
  /** Build logs, `log/<drv>`. */
  readonly logs: BuildLogs
  /** Realisations and build traces of content-addressed derivations, `….doi`. */
  readonly realisations: Realisations
  /** The debug info index, `debuginfo/<build-id>.debug`. */
  readonly debugInfo: DebugInfoIndex

  constructor(
    readonly cas: Cas,
    private readonly options: BinaryCacheOptions,
  ) {
    // Bounded in bytes and in entries without allocating for every entry up front (see
    // upToEntries): each entry counts at least its share of the bytes.
    const share = Math.ceil(NARINFO_CACHE_BYTES / Math.max(1, options.narinfoCacheEntries))
    this.narinfos = new LRUCache<string, Buffer>({
      maxSize: NARINFO_CACHE_BYTES,
      sizeCalculation: (body) => Math.max(share, body.length),
      ttl: 60_000,
    })
    this.logs = new BuildLogs(cas, options.maxLogSize, options.ingest.budget)
    this.realisations = new Realisations(cas, {
      storeDir: options.storeDir,
      signingKeys: options.signingKeys,
      trustedUploadKeys: options.trustedUploadKeys,
      requireUploadSignature: options.requireUploadSignature,
      allowOverwrite: options.allowNarinfoOverwrite,
      maxSignatures: options.maxSignatures,
    })
    this.debugInfo = new DebugInfoIndex(cas)
  }

  /** Learns the chunks other replicas (or this one, before a restart) stored; returns how many. */
  refreshDedup(signal?: AbortSignal): Promise<number> {
    return this.options.ingest.dedup?.refresh(this.cas, signal) ?? Promise.resolve(0)
  }

  /** Stops the ingest workers, if any. */
  async close(): Promise<void> {
    await this.options.parser?.close()
    // Before the stores close: chunks uploads added go out to the other replicas.
    await this.options.ingest.dedup?.close()
  }

  get signingKeyNames(): string[] {
    return this.options.signingKeys.map((key) => key.name)
  }

  get storeDir(): string {
    return this.options.storeDir
  }

  cacheInfo(): string {
    return renderCacheInfo({ storeDir: this.options.storeDir, wantMassQuery: true, priority: this.options.priority })
  }

  private toNarInfo(info: PathInfo): NarInfo {
    const narinfo: NarInfo = {
      storePath: info.storePath,
      url: `nar/${encodeNixbase32(info.narHash.digest)}.nar`,
      compression: 'none',
      narHash: info.narHash,
      narSize: info.narSize,
      references: info.references,
      signatures: info.signatures,
    }
    if (info.deriver !== undefined) narinfo.deriver = info.deriver
    if (info.system !== undefined) narinfo.system = info.system
    if (info.ca !== undefined) narinfo.ca = info.ca
    return narinfo
  }

  /**
   * The narinfo of a store path hash if it is in memory: the common request answered with no
   * promise and no store read. Only valid hashes are ever cached, so any other string misses.
   */
  cachedNarInfo(hash: string): Buffer | undefined {
    return this.narinfos.get(hash)
  }

  /**
   * The narinfo of a store path hash (its text, UTF-8), or undefined. Our signature is made at
   * upload; a path stored before a key was configured is signed here once, then served from
   * the LRU. A path not stored here is asked of the upstreams, if any (they answer undefined
   * rather than fail).
   */
  async narInfo(hash: string): Promise<Buffer | undefined> {
    const cached = this.narinfos.get(hash)
    if (cached !== undefined) return cached
    checkStorePathHash(hash)
    const info = await this.cas.getPathInfo(hash)
    if (info === undefined) return this.fromUpstream(hash)
    let narinfo = this.toNarInfo(info)
    const unsigned = this.options.signingKeys.filter((key) => !narinfo.signatures.some((signature) => signature.startsWith(`${key.name}:`)))
    if (unsigned.length > 0) narinfo = signNarInfo(narinfo, unsigned, this.options.storeDir)
    const body = Buffer.from(renderNarInfo(narinfo))
    this.narinfos.set(hash, body)
    return body
  }

  /**
   * A path some upstream has. When its NAR is stored here already (another path with the
   * same contents, or a download that just finished) it becomes a local path at once, with
   * no download; if recording it fails, the upstream's answer still stands.
   */
  private async fromUpstream(hash: string): Promise<Buffer | undefined> {
    const found = await this.options.upstreams?.lookup(hash)
    if (found === undefined) return undefined
    const answer = Buffer.from(found.text)
    try {
      const record = await this.cas.getNarRecord(found.narinfo.narHash)
      if (record === undefined || record.narSize !== found.narinfo.narSize) return answer
      await this.recordPath(hash, found.narinfo, record.root)
      return (await this.narInfo(hash)) ?? answer
    } catch {
      return answer
    }
  }

  /**
   * Checks an uploaded narinfo against what was ingested, then records the path. A store
   * path is immutable: a narinfo that describes other contents (NarHash, NarSize or
   * References) than the stored one is a 409 unless overwrites are allowed, while the same
   * one again is accepted and adds its signatures (`nix store sign --store …` does that).
   */
  async putNarInfo(hash: string, text: string): Promise<void> {
    checkStorePathHash(hash)
    const narinfo = parseNarInfo(text, this.options.storeDir, { maxSignatures: this.options.maxSignatures })
    const path = parseStorePath(narinfo.storePath, this.options.storeDir)
    if (path.hash !== hash) throw new NixcasError('BAD_NARINFO', `StorePath ${narinfo.storePath} does not belong at ${hash}.narinfo`)
    // Under a lease, so that garbage collection on any replica keeps what this narinfo relies on (cas/lease.ts).
    const lease = await Lease.open(this.cas.store)
    try {
      await this.publishNarInfo(hash, narinfo, lease)
    } finally {
      await lease.close().catch(() => undefined)
    }
  }

  private async publishNarInfo(hash: string, narinfo: NarInfo, lease: Lease): Promise<void> {
    const referenceHashes = narinfo.references.map((reference) => reference.slice(0, STORE_PATH_HASH_LENGTH)).filter((reference) => reference !== hash)
    await lease.claimForNarInfo(narinfo.narHash, referenceHashes, { maxWait: this.options.gcWait })
    const entry = await this.cas.getNarRecord(narinfo.narHash)
    if (entry === undefined) throw new NixcasError('BAD_NARINFO', `no NAR with NarHash ${formatNixHash(narinfo.narHash)} was uploaded`)
    if (entry.narSize !== narinfo.narSize) throw new NixcasError('BAD_NARINFO', `NarSize ${narinfo.narSize} differs from the uploaded NAR's ${entry.narSize} bytes`)
    if (this.options.requireUploadSignature && validNarInfoSignatures(narinfo, this.options.trustedUploadKeys, this.options.storeDir).length === 0) {
      throw new NixcasError('FORBIDDEN', 'the narinfo carries no valid signature from a trusted key')
    }
    const references = [...narinfo.references].sort()
    const stored = await this.cas.getPathInfo(hash)
    const same = stored !== undefined && stored.storePath === narinfo.storePath && hashesEqual(stored.narHash, narinfo.narHash) && stored.narSize === narinfo.narSize && stored.references.join(' ') === references.join(' ')
    if (stored !== undefined && !same && !this.options.allowNarinfoOverwrite) {
      const what = hashesEqual(stored.narHash, narinfo.narHash) ? `NarHash ${formatNixHash(stored.narHash)} but other references` : `NarHash ${formatNixHash(stored.narHash)}, not ${formatNixHash(narinfo.narHash)}`
      throw new NixcasError('CONFLICT', `${stored.storePath} is already stored with ${what}; a store path's contents never change`)
    }
    // Checked after the claim, so a collection keeps what was found: a narinfo never goes up with its closure incomplete.
    // Read at once, not one after another: a narinfo may have dozens of references, each a round trip on S3.
    const present = await Promise.all(referenceHashes.map(async (reference) => (await this.cas.getPathInfo(reference)) !== undefined))
    const missing = referenceHashes.find((_, index) => !present[index])
    if (missing !== undefined) throw new NixcasError('BAD_NARINFO', `reference ${missing} is not in this cache; push it first (nix copy does)`)
    await this.recordPath(hash, narinfo, entry.root, same ? stored.signatures : [])
  }

  /** The `.ls` listing of a store path as JSON text in pieces, or undefined. Its closure is loaded (and checked) first. */
  async listing(hash: string, signal?: AbortSignal): Promise<Iterable<string> | undefined> {
    checkStorePathHash(hash)
    const info = await this.cas.getPathInfo(hash)
    if (info === undefined) return undefined
    const record = await this.cas.getNarRecord(info.narHash, signal)
    return listingJson(info.root, record?.tree ?? (await loadClosure(this.cas, info.root, signal)))
  }

  /** Whether a NAR was uploaded under this file name (Nix HEADs before it PUTs). */
  async hasUpload(name: string): Promise<boolean> {
    const parsed = parseNarFileName(name)
    if (!parsed) return false
    if (parsed.compression === 'none' && NAR_HASH.test(parsed.stem) && (await this.cas.getNarRecord(narHashOf(parsed.stem))) !== undefined) return true
    const record = await this.cas.getUpload(parsed.stem, name)
    // A name whose NAR was garbage collected is not there any more: Nix must upload it again.
    return record !== undefined && (await this.cas.hasNarRecord(record.narHash))
  }

  /**
   * What a file name under `nar/` serves: the hash of its NAR and the compression of the
   * bytes to send. `<narhash>.nar` is the NAR of that hash (`byHash`: no store read to say
   * so); with `uploaded`, and for every other name, it is the NAR uploaded under that name,
   * which stays fetchable: a client keeps the narinfo it uploaded, with the URL it chose,
   * for a month.
   */
  async narFile(name: string, options: { uploaded?: boolean } = {}): Promise<NarFile | undefined> {
    const parsed = parseNarFileName(name)
    if (!parsed) return undefined
    if (parsed.compression === 'none' && NAR_HASH.test(parsed.stem) && !options.uploaded) return { narHash: parsed.stem, compression: 'none', byHash: true }
    const record = await this.cas.getUpload(parsed.stem, name)
    return record && { narHash: encodeNixbase32(record.narHash.digest), compression: record.compression ?? parsed.compression, byHash: false }
  }

  /**
   * Ingests an uploaded NAR, decompressing it as its name says. Nix has no suffix for gzip
   * (`compression=gzip` uploads `<filehash>.nar`), so a plain name whose body starts with
   * gzip's magic is gzip, named by its file hash; a NAR itself never starts so.
   */
  async putNar(name: string, body: AsyncIterable<Uint8Array>, signal?: AbortSignal, options: { handOver?: boolean } = {}): Promise<IngestResult> {
    const parsed = parseNarFileName(name)
    if (!parsed) throw new NixcasError('BAD_REQUEST', `${JSON.stringify(name)} is not <name>.nar[.xz|.zst|.bz2|.br]`)
    let method = parsed.compression
    if (method === 'none') ({ method, body } = await sniffGzip(body))
    // A plain `.nar` named by its NAR hash must be that NAR, checked before it is indexed: a refused NAR is never servable.
    const expectedNarHash = method === 'none' && NAR_HASH.test(parsed.stem) ? narHashOf(parsed.stem) : undefined
    const record = (result: IngestResult): UploadRecord => (method === parsed.compression ? { narHash: result.narHash } : { narHash: result.narHash, compression: method })
    // `<narhash>.nar` is the NAR's own name, found without a record of the upload.
    const publish = expectedNarHash ? undefined : (result: IngestResult) => this.cas.putUpload(parsed.stem, name, record(result))
    return this.ingest(body, { method, expectedNarHash, signal, handOver: options.handOver, publish })
  }

  /**
   * Ingests a NAR stream through the bounded ingest (worker pool, upload budget, dedup).
   * `expectedNarHash` and `maxNarSize` are checked before anything becomes visible. With
   * `handOver`, the body's buffers are the ingest's to keep (moved to a worker, not copied).
   */
  async ingest(
    body: AsyncIterable<Uint8Array>,
    options: { method: NarCompression; expectedNarHash?: NixHash; maxNarSize?: number; signal?: AbortSignal; handOver?: boolean; publish?: (result: IngestResult) => Promise<void> },
  ): Promise<IngestResult> {
    const { chunkSizes } = this.options.ingest
    const maxNarSize = Math.min(options.maxNarSize ?? Infinity, this.options.ingest.maxNarSize ?? Infinity)
    const limit = Number.isFinite(maxNarSize) ? maxNarSize : undefined
    const { signal, expectedNarHash } = options
    const parseOptions: ParseOptions = { method: options.method, chunkSizes, maxNarSize: limit, signal }
    const events = this.options.parser ? this.options.parser.parse(options.handOver === true ? body : owned(body), parseOptions) : parseNarEvents(body, parseOptions)
    // The lease covers the record and what `publish` writes too: garbage collection on any replica sees them or it.
    const lease = await Lease.open(this.cas.store)
    try {
      return await storeNar(this.cas, events, { ...this.options.ingest, maxNarSize: limit, signal, expectedNarHash, lease, publish: options.publish })
    } finally {
      await lease.close().catch(() => undefined)
    }
  }

  /**
   * Records a path whose NAR was ingested (`root`) and checked against `narinfo`: the
   * signatures it carries are kept (distinct, at most maxSignatures with ours) and ours are
   * added. Pulled-through paths come here; uploads after their own checks.
   */
  async recordPath(hash: string, narinfo: NarInfo, root: CasNode, extraSignatures: readonly string[] = []): Promise<PathInfo> {
    const references = [...narinfo.references].sort()
    const ours = new Set(this.options.signingKeys.map((key) => key.name))
    const theirs = [...new Set([...narinfo.signatures, ...extraSignatures])].filter((signature) => !ours.has(signature.slice(0, signature.indexOf(':'))))
    const kept = theirs.slice(0, Math.max(0, this.options.maxSignatures - ours.size))
    const signed = signNarInfo({ ...narinfo, references, signatures: kept }, this.options.signingKeys, this.options.storeDir)
    const info: PathInfo = {
      storePath: narinfo.storePath,
      narHash: narinfo.narHash,
      narSize: narinfo.narSize,
      references,
      signatures: signed.signatures,
      root,
    }
    if (narinfo.deriver !== undefined) info.deriver = narinfo.deriver
    if (narinfo.system !== undefined) info.system = narinfo.system
    if (narinfo.ca !== undefined) info.ca = narinfo.ca
    await this.cas.putPathInfo(hash, info)
    this.narinfos.delete(hash)
    return info
  }
}

import { tmpdir } from 'node:os'
import { isAbsolute, join } from 'node:path'
import type { InstanceConfig } from '../stores/compose.ts'
import { boolean, custom, directory, duration, fileList, integer, listenAddress, oneOf, size, string, stringList, userMap } from './kinds.ts'
import { setting } from './setting.ts'
import { publicKeyList, upstreamList } from './upstreams.ts'

const MiB = 2 ** 20

/** Named store instances; compose.ts checks each one, since each type has its own options. */
const storeInstances = custom<Record<string, InstanceConfig>>({
  describe: 'mapping of names to store definitions (`{ type, …options }`)',
  parse(raw, field) {
    if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return field.fail('expected a mapping of named store instances')
    return raw as Record<string, InstanceConfig>
  },
  format: (value) => Object.keys(value).join(', '),
})

const storeRoot = custom<string | InstanceConfig>({
  describe: 'store name, URL or inline definition',
  parse(raw, field) {
    if (typeof raw === 'string' && raw.length > 0) return raw
    if (raw && typeof raw === 'object' && !Array.isArray(raw)) return raw as InstanceConfig
    return field.fail('expected the name of a store, a store URL or an inline definition')
  },
  format: (value) => (typeof value === 'string' ? value : JSON.stringify(value)),
})

/**
 * Every setting of `nixcas serve`, once: its place in the file, kind, default,
 * environment variable, flag and bounds. Resolution, `config check`, `config docs`,
 * the flags of `serve` and the ServerConfig type all derive from this table, so a new
 * setting is one entry here. Sections nest as they do in the file.
 */
export const settings = {
  listen: setting({ kind: listenAddress, default: { host: '127.0.0.1', port: 5000 }, env: 'NIXCAS_LISTEN', flag: '--listen <host:port>', doc: 'Where to listen.' }),
  root: setting({
    kind: storeRoot,
    required: true,
    env: 'NIXCAS_STORE',
    flag: '--store <url>',
    doc: 'The store that serves requests: a name from `stores`, a store URL (file://…, s3://…, gs://…, memory://) or an inline definition. From the environment or a flag it is a URL and `stores` is not read.',
  }),
  stores: setting({ kind: storeInstances, default: {}, doc: 'Named store instances that refer to each other.' }),
  storeDir: setting({
    kind: string,
    default: '/nix/store',
    env: 'NIXCAS_STORE_DIR',
    doc: 'The Nix store directory in nix-cache-info and narinfos.',
    check: (value) => (isAbsolute(value) ? undefined : 'must be an absolute path'),
  }),
  priority: setting({ kind: integer, default: 40, env: 'NIXCAS_PRIORITY', flag: '--priority <n>', doc: 'Priority in nix-cache-info (lower is preferred).' }),
  signingKeys: setting({
    kind: fileList,
    default: [],
    env: 'NIXCAS_SIGNING_KEYS',
    flag: '--signing-key <file>',
    doc: 'Nix secret key files (nixcas keygen, nix-store --generate-binary-cache-key) to sign narinfos with.',
  }),
  trustedUploadKeys: setting({ kind: stringList, default: [], env: 'NIXCAS_TRUSTED_UPLOAD_KEYS', doc: 'Public keys (`name:base64`) that may sign uploaded narinfos.' }),
  requireUploadSignature: setting({
    kind: boolean,
    default: false,
    env: 'NIXCAS_REQUIRE_UPLOAD_SIGNATURE',
    doc: 'Refuse uploaded narinfos not signed by one of `trustedUploadKeys`.',
  }),
  upstreams: setting({
    kind: upstreamList,
    default: [],
    env: 'NIXCAS_UPSTREAMS',
    flag: '--upstream <url>',
    doc: 'Binary caches asked for paths that are not stored here (pull-through): a narinfo is accepted only with a valid signature by one of its `publicKeys` (or `upstreamKeys`) unless `allowUnsigned`; a NAR is streamed to the client while it is checked and stored. Lower `priority` is asked first (default 50); `timeout` bounds a narinfo lookup and any pause of a NAR download (default 5s).',
  }),
  upstreamKeys: setting({ kind: publicKeyList, default: [], env: 'NIXCAS_UPSTREAM_KEYS', flag: '--upstream-key <name:base64>', doc: 'Public keys trusted for the narinfos of every upstream, beside each one\'s own `publicKeys`.' }),
  upstreamNegativeTtl: setting({ kind: duration('s'), default: 300, env: 'NIXCAS_UPSTREAM_NEGATIVE_TTL', doc: 'How long a path no upstream has is remembered as missing (upstream errors are never remembered).' }),
  upstreamCacheEntries: setting({ kind: integer, default: 100_000, min: 1, env: 'NIXCAS_UPSTREAM_CACHE_ENTRIES', doc: 'Upstream narinfos (found and missing) kept in memory; a NAR is pulled through only while its narinfo is remembered.' }),
  upstreamWindowBytes: setting({ kind: size, default: 8 * MiB, min: MiB, env: 'NIXCAS_UPSTREAM_WINDOW_BYTES', doc: 'Decoded bytes of one upstream NAR download kept for the clients sharing it; a client further behind waits for the download to be stored and is then served from here. Windows take room in `totalWindowBytes`.' }),
  upstreamSpoolDir: setting({
    kind: directory,
    default: join(tmpdir(), 'nixcas-spool'),
    env: 'NIXCAS_UPSTREAM_SPOOL_DIR',
    doc: 'Local directory where upstream NAR downloads are spooled (decoded, whole), so clients get them at the upstream\'s pace while the ingest reads them at its own. Files are unlinked as soon as they are open; leftovers of a crash are removed at start-up.',
  }),
  upstreamSpoolBytes: setting({
    kind: size,
    default: 4 * 1024 * MiB,
    env: 'NIXCAS_UPSTREAM_SPOOL_BYTES',
    doc: 'Most bytes of all spooled downloads together (each reserves its NarSize); a download that does not fit goes at the pace of the ingest through `upstreamWindowBytes`. 0 turns spooling off.',
  }),
  auth: {
    writeTokens: setting({ kind: stringList, default: [], secret: true, env: 'NIXCAS_WRITE_TOKENS', doc: 'Tokens allowed to upload, as `Bearer <token>` or a Basic password. With no write credentials, only a loopback-only server accepts uploads.' }),
    writeUsers: setting({ kind: userMap, default: {}, secret: true, env: 'NIXCAS_WRITE_USERS', doc: 'Basic auth users allowed to upload.' }),
    readTokens: setting({ kind: stringList, default: [], secret: true, env: 'NIXCAS_READ_TOKENS', doc: 'Tokens allowed to read; with no read credentials reads are public (write credentials can read too).' }),
    readUsers: setting({ kind: userMap, default: {}, secret: true, env: 'NIXCAS_READ_USERS', doc: 'Basic auth users allowed to read.' }),
  },
  narinfoMaxAge: setting({ kind: duration('s'), default: 3600, env: 'NIXCAS_NARINFO_MAX_AGE', doc: 'Cache-Control max-age of narinfos, for CDNs.' }),
  notFoundMaxAge: setting({ kind: duration('s'), default: 60, env: 'NIXCAS_NOT_FOUND_MAX_AGE', doc: 'Cache-Control max-age of 404 answers.' }),
  windowBytes: setting({ kind: size, min: MiB, env: 'NIXCAS_WINDOW_BYTES', doc: 'Read-ahead of one NAR response (a quarter of it may hold copies of chunks the NAR repeats); when unset, chosen by the root store: 2 MiB for a local disk, 64 MiB for a remote store.' }),
  maxRequests: setting({ kind: integer, min: 1, env: 'NIXCAS_MAX_REQUESTS', doc: 'Store reads in flight for one NAR response; when unset, 4 for a local disk, 16 for a remote store.' }),
  packSize: setting({ kind: size, default: 16 * MiB, min: MiB, max: 1024 * MiB, env: 'NIXCAS_PACK_SIZE', doc: 'New chunks are stored in data packs of about this size.' }),
  dedupIndexEntries: setting({
    kind: integer,
    default: 500_000,
    min: 1,
    env: 'NIXCAS_DEDUP_INDEX_ENTRIES',
    doc: 'Chunks the dedup index remembers (about 200 bytes of memory each); beyond it the least recently used are forgotten and may be stored again.',
  }),
  dedupPublishInterval: setting({
    kind: duration('s'),
    default: 10,
    min: 0,
    env: 'NIXCAS_DEDUP_PUBLISH_INTERVAL',
    doc: 'How long the chunks an upload added wait before other replicas can learn them, gathered with those of later uploads into one index segment (one object for many NARs); 0 writes a segment per upload. This replica knows them at once.',
  }),
  maxNarSize: setting({ kind: size, min: 1, env: 'NIXCAS_MAX_NAR_SIZE', doc: 'Largest NAR accepted for upload; unlimited when unset.' }),
  uploadBytesInFlight: setting({ kind: size, default: 64 * MiB, min: MiB, env: 'NIXCAS_UPLOAD_BYTES_IN_FLIGHT', doc: 'Bytes one upload may hold before it waits for the store.' }),
  uploadIdleTimeout: setting({ kind: duration('s'), default: 60, env: 'NIXCAS_UPLOAD_IDLE_TIMEOUT', doc: 'An upload whose client sends no byte of its body for this long while the server waits for one is answered 408 (a client that declared a body and never sends it would otherwise hold the request forever); 0 turns it off.' }),
  totalUploadBytes: setting({ kind: size, default: 256 * MiB, min: MiB, env: 'NIXCAS_TOTAL_UPLOAD_BYTES', doc: 'Bytes all uploads together may hold.' }),
  totalWindowBytes: setting({ kind: size, default: 128 * MiB, min: MiB, env: 'NIXCAS_TOTAL_WINDOW_BYTES', doc: 'Bytes all NAR read-ahead windows together may hold.' }),
  narinfoCacheEntries: setting({ kind: integer, default: 100_000, env: 'NIXCAS_NARINFO_CACHE_ENTRIES', doc: 'Narinfos kept in memory.' }),
  wholeNarCacheBytes: setting({
    kind: size,
    default: 32 * MiB,
    env: 'NIXCAS_WHOLE_NAR_CACHE_BYTES',
    doc: 'Memory for small NARs kept whole as sent (each at most 1/32 of it, for a minute at most), answered with no store read; 0 keeps none.',
  }),
  compressNars: setting({ kind: boolean, default: true, env: 'NIXCAS_COMPRESS_NARS', doc: 'Compress NAR responses when the client accepts it.' }),
  allowNarinfoOverwrite: setting({
    kind: boolean,
    default: false,
    env: 'NIXCAS_ALLOW_NARINFO_OVERWRITE',
    doc: 'Accept a narinfo whose NarHash differs from the one stored for its store path, and a realisation or build trace whose output path differs from the stored one; otherwise they are refused with 409.',
  }),
  maxLogSize: setting({ kind: size, default: 64 * MiB, min: 1, env: 'NIXCAS_MAX_LOG_SIZE', doc: 'Largest build log (`nix store copy-log --to`) accepted, counted uncompressed.' }),
  maxSignatures: setting({ kind: integer, default: 32, min: 1, max: 1024, env: 'NIXCAS_MAX_SIGNATURES', doc: 'Most distinct signatures kept on a narinfo, realisation or build trace, ours included; an upload carrying more is refused.' }),
  pressure: {
    maxEventLoopDelay: setting({ kind: duration('ms'), default: 1000, env: 'NIXCAS_PRESSURE_MAX_EVENT_LOOP_DELAY', doc: 'Overloaded above this mean event loop delay over a sample interval; 0 turns it off. While overloaded, NAR and listing downloads are answered 503 (but for small NARs kept in memory, which cost no read); uploads, HEADs, narinfos, /health and /metrics never are.' }),
    maxHeapUsedBytes: setting({ kind: size, default: 0, env: 'NIXCAS_PRESSURE_MAX_HEAP_USED_BYTES', doc: 'Overloaded above this heap size; 0 turns it off.' }),
    maxRssBytes: setting({ kind: size, default: 0, env: 'NIXCAS_PRESSURE_MAX_RSS_BYTES', doc: 'Overloaded above this resident set size while that memory is in use (heap and buffers); 0 turns it off.' }),
    recoverPercent: setting({ kind: integer, default: 50, min: 1, max: 99, env: 'NIXCAS_PRESSURE_RECOVER_PERCENT', doc: 'Overload ends once every signal is below this percentage of its limit.' }),
    sampleInterval: setting({ kind: duration('ms'), default: 1000, min: 10, max: 60_000, env: 'NIXCAS_PRESSURE_SAMPLE_INTERVAL', doc: 'How often load is sampled; the event loop delay is a mean over this interval.' }),
    retryAfter: setting({ kind: duration('s'), default: 10, min: 1, env: 'NIXCAS_PRESSURE_RETRY_AFTER', doc: 'Retry-After of a shed request.' }),
  },
  workers: setting({
    kind: integer,
    default: 1,
    min: 1,
    max: 64,
    env: 'NIXCAS_WORKERS',
    flag: '--workers <n>',
    doc: 'Server processes sharing the listening socket (node:cluster), each with its own caches and counters: /metrics shows the process that answers. They share the store, as replicas do.',
  }),
  gc: {
    interval: setting({ kind: duration('s'), default: 0, env: 'NIXCAS_GC_INTERVAL', doc: 'Run garbage collection in the server this often (one replica at a time, through a lock in the store); 0 turns it off. At least 1m.', check: (value) => (value !== 0 && value < 60 ? 'must be 0 (off) or at least 1m' : undefined) }),
    retain: setting({ kind: duration('s'), default: 30 * 86_400, env: 'NIXCAS_GC_RETAIN', doc: 'Scheduled GC keeps paths pushed or downloaded within this time, with their closures (as `nixcas gc --retain`).' }),
    maxSize: setting({ kind: size, min: 1, env: 'NIXCAS_GC_MAX_SIZE', doc: 'Scheduled GC then evicts the least recently used paths until what the kept paths need fits (as `nixcas gc --max-size`); no limit when unset.' }),
    grace: setting({ kind: duration('s'), default: 6 * 3600, env: 'NIXCAS_GC_GRACE', doc: 'Scheduled GC never deletes an object younger than this; make it longer than any upload takes.' }),
    settle: setting({ kind: duration('s'), env: 'NIXCAS_GC_SETTLE', doc: "How long a deleted narinfo's NAR stays fetchable, as caches may still serve the narinfo; when unset, `narinfoMaxAge` plus a minute." }),
    narinfoWait: setting({ kind: duration('ms'), default: 30_000, max: 600_000, env: 'NIXCAS_GC_NARINFO_WAIT', doc: 'How long a narinfo PUT that relies on existing objects waits while a collection is deleting, before it answers a retryable 503 (which can fail `nix copy`; see the README).' }),
  },
  access: {
    flushInterval: setting({ kind: duration('s'), default: 300, min: 1, max: 86_400, env: 'NIXCAS_ACCESS_FLUSH_INTERVAL', doc: 'How often each replica writes the store paths and NARs it served since the last time (one small object in `access/`; also on shutdown): what retention and `maxSize` count as downloads.' }),
    maxEntries: setting({ kind: integer, default: 100_000, min: 1, env: 'NIXCAS_ACCESS_MAX_ENTRIES', doc: 'Distinct paths and NARs one replica remembers between flushes (about 100 bytes each); a full replica flushes early.' }),
  },
  // setTimeout fires at once for delays above 2^31-1 ms.
  shutdownTimeout: setting({ kind: duration('ms'), default: 10_000, max: 2 ** 31 - 1, env: 'NIXCAS_SHUTDOWN_TIMEOUT', doc: 'How long requests in flight may take to finish on SIGINT/SIGTERM.' }),
  logLevel: setting({ kind: oneOf('fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'), default: 'info', env: 'NIXCAS_LOG_LEVEL', doc: 'Least severe level logged.' }),
}

/** The shootout's table: each measure with nixcas, what stands beside it, their ratio, and the target. */
import { MB } from './lib.ts'
import { median } from './shootout-client.ts'
import type { Closure, TwoVersions } from './shootout-corpus.ts'
import type { Pair, ReadResults } from './shootout-read.ts'
import type { Du, PushResults, S3Results, TwoVersionsResults } from './shootout-write.ts'

export interface ShootoutResults {
  command: string
  machine: string
  /** Other work kept the machine's cores busy during the run. */
  busy: boolean
  revision: string
  quick: boolean
  reps: number
  closure: Closure & { narBytes: number }
  doc: { files: number; narSize: number }
  tree: TwoVersions
  push: PushResults['push']
  stored: { nixcas: Du; nginx: Du; logical: number }
  read: ReadResults
  ingest: Record<1 | 4, Pair>
  s3: S3Results
  twoVersions: TwoVersionsResults
}

const MiB = 2 ** 20
const int = (value: number): string => Math.round(value).toLocaleString('en-US')
const kilo = (value: number): string => `${(value / 1000).toFixed(1)}k`
const secs = (value: number): string => (value < 10 ? value.toFixed(2) : value.toFixed(1))
const times = (value: number): string => `${value.toFixed(2)}×`

/** The median, and the range over the runs when there were several. */
function figure(values: number[], format: (value: number) => string, unit: string): string {
  const middle = `${format(median(values))}${unit}`
  if (values.length < 2) return middle
  return `${middle} (${format(Math.min(...values))}–${format(Math.max(...values))})`
}

type Row = [measure: string, nixcas: string, beside: string, ratio: string, target: string]

function rows(r: ShootoutResults): Row[] {
  const rate = (values: number[]): string => figure(values, int, ' MB/s')
  const reqs = (values: number[]): string => figure(values, kilo, ' req/s')
  const time = (values: number[]): string => figure(values, secs, ' s')
  const faster = (pair: Pair): string => times(median(pair.nixcas) / median(pair.nginx))
  const quicker = (pair: Pair): string => times(median(pair.nginx) / median(pair.nixcas))
  const n = r.closure.paths.length
  const closureMB = int(r.closure.narBytes / MB)
  const docMB = int(r.doc.narSize / MB)
  const s3Requests = median(r.s3.requests)
  const ratio = (du: Du, logical: number): string => `${(du.apparent / logical).toFixed(2)} (on disk ${(du.allocated / logical).toFixed(2)})`
  const two = r.twoVersions
  const bothNar = two.narSize.v1 + two.narSize.v2
  const rss = r.read.rss
  return [
    [`closure NAR download (${n} paths, ${closureMB} MB), 1 connection`, rate(r.read.download[1].nixcas), `nginx ${rate(r.read.download[1].nginx)}`, faster(r.read.download[1]), '≥ 0.7×'],
    ['the same, 4 connections', rate(r.read.download[4].nixcas), `nginx ${rate(r.read.download[4].nginx)}`, faster(r.read.download[4]), '≥ 0.8×'],
    [`narinfo, 1 keep-alive connection cycling through all ${n} (wrk -c1)`, reqs(r.read.narinfoCycle.nixcas), `nginx ${reqs(r.read.narinfoCycle.nginx)}`, faster(r.read.narinfoCycle), '≥ 1.0×'],
    ['hot narinfo, wrk -t1 -c32 -d5s', reqs(r.read.narinfoHot.nixcas), `nginx ${reqs(r.read.narinfoHot.nginx)}`, faster(r.read.narinfoHot), '≥ 0.8×'],
    [
      `/usr/share/doc NAR (${int(r.doc.files)} files, ${docMB} MB) from the fs store`,
      rate(r.read.docNar.nixcas),
      `nginx sending the NAR file ${rate(r.read.docNar.nginx)}; \`nix-store --dump\` ${rate(r.read.docNar.dump)}`,
      faster(r.read.docNar),
      '≥ 0.5×',
    ],
    [
      `the same NAR from S3 (s3rver), ${r.s3.latencyMs} ms added per request`,
      `${time(r.s3.warmSeconds)} (${int(r.doc.narSize / MB / median(r.s3.warmSeconds))} MB/s) from a running process, ${time(r.s3.seconds)} as a new process's first request; ${figure(r.s3.requests, int, '')} S3 requests`,
      `those requests one at a time: ≥ ${secs((s3Requests * r.s3.latencyMs) / 1000)} s`,
      '',
      `≤ 1.0 s, ≤ ${Math.ceil(r.doc.narSize / MiB) + 3} requests`,
    ],
    [`ingest: curl PUT of the ${n} NAR files, 1 at a time`, time(r.ingest[1].nixcas), `nginx WebDAV ${time(r.ingest[1].nginx)}`, quicker(r.ingest[1]), '≥ 0.8×'],
    ['the same, 4 in parallel', time(r.ingest[4].nixcas), `nginx WebDAV ${time(r.ingest[4].nginx)}`, quicker(r.ingest[4]), '≥ 0.8×'],
    [
      'push: `nix copy --to http://…?compression=none` of the closure',
      time(r.push.nixcas),
      `the same to nginx WebDAV ${time(r.push.nginx)}; \`nix copy --to file://\` ${time(r.push.file)}`,
      quicker(r.push),
      '≥ 0.9×',
    ],
    [
      'peak RSS, 32 concurrent downloads of the doc NAR',
      `${int(rss.peak / MiB)} MiB (VmHWM)`,
      `highest VmRSS sampled ${int(rss.sampled / MiB)} MiB; idle ${int(rss.idle / MiB)} MiB; ${int(rss.rate)} MB/s in all`,
      '',
      '< 256 MB',
    ],
    ['stored / logical NAR bytes, the closure', ratio(r.stored.nixcas, r.stored.logical), `nginx's cache ${ratio(r.stored.nginx, r.stored.logical)}`, '', ''],
    [
      `stored / logical, two versions of ${r.tree.source} (${int(r.tree.edited)} of ${int(r.tree.v1.files)} files edited)`,
      ratio(two.afterV2, bothNar),
      `one version alone ${ratio(two.afterV1, two.narSize.v1)}; the second added ${((100 * (two.afterV2.apparent - two.afterV1.apparent)) / two.narSize.v2).toFixed(1)} % of its NAR`,
      '',
      '≤ 0.55',
    ],
  ]
}

export function renderShootout(r: ShootoutResults): string {
  const table = rows(r).map((row) => `| ${row.map((cell) => cell.replace(/\|/g, '\\|')).join(' | ')} |`)
  const skipped = r.closure.skipped.length === 0 ? 'none skipped' : `${r.closure.skipped.length} skipped (${r.closure.skipped.map((skip) => `${skip.source}: ${skip.reason}`).join('; ')})`
  const files = r.closure.paths.reduce((total, path) => total + path.files, 0)
  return `## shootout: nixcas beside nginx and Nix, one run${r.quick ? ' (quick mode)' : ''}

\`${r.command}\` — ${r.machine}; nixcas ${r.revision}

Corpus: ${r.closure.paths.length} store paths added with \`nix-store --add\` from /usr (${int(r.closure.narBytes / MB)} MB of NAR, ${int(files)} files; ${skipped}), /usr/share/doc among them as one path. ${r.reps > 1 ? `Medians of ${r.reps} runs, range in brackets` : 'One run each'}; ratio = nixcas's speed ÷ nginx's (above 1: nixcas is faster).${r.busy ? ' Other work kept this machine busy during the run (load average above its core count): absolute figures are low and ratios noisier than on an idle machine.' : ''}

| measure | nixcas | beside it | ratio | target |
|---|---|---|---|---|
${table.join('\n')}

How: nixcas is \`node dist/src/cli.js serve --store file://…\` (or \`s3://…\`; compiled from the sources at the start, as \`npm start\` runs it), one process, log level warn, defaults otherwise, filled by the \`nix copy\` above. nginx (one worker, access log off) serves a \`nix copy --to file://…?compression=none\` cache of the same paths with sendfile, and takes PUTs with its WebDAV module. The same client talks to both: curl (keep-alive, bodies to /dev/null, every status and size checked), \`wrk -t1\`, \`nix copy\` with a fresh narinfo cache. Each write goes to an empty target after a \`sync\`; reads follow one untimed pass. S3: s3rver in the benchmark's process behind a proxy that waits ${r.s3.latencyMs} ms before forwarding each request and counts them; each GET from a new nixcas process, as its first request or after it served a small NAR. Stored bytes: \`du --apparent-size\` of nixcas's data directory (allocated blocks as "on disk") ÷ the sum of NarSize.
`
}

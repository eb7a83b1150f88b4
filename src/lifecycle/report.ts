import { humanBytes as bytes } from '../units.ts'
import type { GcReport } from './gc.ts'
import type { Tally } from './sweep.ts'

const tally = (value: Tally): string => `${value.objects} objects, ${bytes(value.bytes)}`

function kinds(label: string, values: Record<string, Tally>): string[] {
  const entries = Object.entries(values).filter(([, value]) => value.objects > 0)
  const total = entries.reduce((sum, [, value]) => ({ objects: sum.objects + value.objects, bytes: sum.bytes + value.bytes }), { objects: 0, bytes: 0 })
  return [`${label}: ${tally(total)}`, ...entries.map(([kind, value]) => `  ${kind.padEnd(14)} ${tally(value)}`)]
}

/** The human summary `nixcas gc` prints. */
export function formatGcReport(report: GcReport): string {
  const would = report.dryRun ? 'would be deleted' : 'deleted'
  const lines = [
    `garbage collection ${report.run}${report.dryRun ? ' (dry run: nothing was deleted)' : ''}`,
    `paths kept: ${report.keptPaths}; ${would}: ${report.deletedPaths.length}`,
    ...report.deletedPaths.map((path) => `  ${path}`),
    ...(report.evictedPaths.length > 0 ? [`of those, evicted by --max-size (least recently used): ${report.evictedPaths.length}`] : []),
    ...(report.keptBytes === undefined ? [] : [`bytes the kept paths need: ${bytes(report.keptBytes)}`]),
    ...kinds(`objects ${would}`, report.deleted),
    ...kinds('objects kept', report.kept),
  ]
  if (report.partlyDeadPacks > 0) lines.push(`data packs kept but partly unused: ${report.partlyDeadPacks}, ${bytes(report.deadPackBytes)} unreferenced (repacking them is not implemented yet)`)
  if (report.rewrittenSegments > 0) lines.push(`index segments rewritten without dead packs: ${report.rewrittenSegments}`)
  if (report.near.objects > 0) lines.push(`cache copies ${would} from near stores: ${tally(report.near)}`)
  if (report.tempFiles.objects > 0) lines.push(`fs temp files ${would}: ${tally(report.tempFiles)}`)
  if (report.liveLeases > 0) lines.push(`writes in flight (live leases) respected: ${report.liveLeases}`)
  if (report.marks.leaves.approximate) lines.push(`chunk-level objects marked: about ${report.marks.leaves.members} in Bloom filters of ${bytes(report.marks.leaves.filterBytes)} (a few garbage ones may be kept until the next run)`)
  if (report.missingReferences.length > 0) lines.push(`kept paths with missing references (run nixcas verify):`, ...report.missingReferences.map((line) => `  ${line}`))
  return `${lines.join('\n')}\n`
}

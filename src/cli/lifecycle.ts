import type { Command } from 'commander'
import { pino } from 'pino'
import { Cas } from '../cas/cas.ts'
import { prepareServer, resolveServerConfig, type ServeFlags, type ServerConfig } from '../config.ts'
import { NixcasError } from '../errors.ts'
import { deletePaths } from '../lifecycle/delete.ts'
import { APPROXIMATE_SET_DEFAULTS } from '../lifecycle/bloom.ts'
import { collectGarbage } from '../lifecycle/gc.ts'
import { Pins } from '../lifecycle/pins.ts'
import { formatGcReport } from '../lifecycle/report.ts'
import { formatStats, storeStats } from '../lifecycle/stats.ts'
import { verifyStore, type VerifyReport } from '../lifecycle/verify.ts'
import { copyHolders, repairFindings } from '../lifecycle/repair.ts'
import { defaultSettle } from '../lifecycle/tombstones.ts'
import { recordGc, writeStats } from '../lifecycle/records.ts'
import type { StoreStack } from '../stores/compose.ts'
import { parseDuration, parseSize } from '../units.ts'

type SelectionFlags = Pick<ServeFlags, 'config' | 'store'>

/** Adds the store selection `serve` has (a config file, or a store URL) to a command. */
export function selecting(command: Command): Command {
  return command.option('--config <file>', 'YAML or JSON configuration, as for serve [env NIXCAS_CONFIG]').option('--store <url>', 'a store URL instead of a file [env NIXCAS_STORE]')
}

/** Opens the configured store as `serve` would, runs `work` on it, closes it. */
export async function withStore<T>(flags: SelectionFlags, work: (cas: Cas, config: ServerConfig, stack: StoreStack) => Promise<T>): Promise<T> {
  const config = await resolveServerConfig({ config: flags.config, store: flags.store })
  const { stack } = await prepareServer(config, { logger: pino({ level: 'warn' }, pino.destination(2)) })
  try {
    return await work(new Cas(stack.root), config, stack)
  } finally {
    await stack.close()
  }
}

function duration(flag: string, text: string): number {
  const value = parseDuration(text)
  if (value === undefined) throw new NixcasError('BAD_REQUEST', `${flag}: ${JSON.stringify(text)} is not a duration (30d, 12h, 90s, 0s)`)
  return value
}

function size(flag: string, text: string): number {
  const value = parseSize(text)
  if (value === undefined) throw new NixcasError('BAD_REQUEST', `${flag}: ${JSON.stringify(text)} is not a size (10G, 500MiB, bytes)`)
  return value
}

function count(flag: string): (text: string) => number {
  return (text) => {
    const value = Number(text)
    if (!Number.isSafeInteger(value) || value < 1) throw new NixcasError('BAD_REQUEST', `${flag}: ${JSON.stringify(text)} is not a positive whole number`)
    return value
  }
}

function rate(flag: string): (text: string) => number {
  return (text) => {
    const value = Number(text)
    if (!(value > 0 && value < 1)) throw new NixcasError('BAD_REQUEST', `${flag}: ${JSON.stringify(text)} is not a rate between 0 and 1 (0.01 is 1 %)`)
    return value
  }
}

export const print = (text: string): void => void process.stdout.write(text.endsWith('\n') ? text : `${text}\n`)

export function addLifecycleCommands(program: Command): void {
  selecting(program.command('gc'))
    .description('delete what no kept path needs: paths outside the retention and the pins (with their closures), and the leftovers of failed uploads')
    .option('--retain <duration>', 'keep paths pushed or downloaded within this time, with their closures', '30d')
    .option('--max-size <size>', 'then evict the least recently used paths (pushed or downloaded) until what the kept paths need fits (10G, 500MiB)')
    .option('--grace <duration>', 'never delete an object younger than this', '6h')
    .option('--settle <duration>', "keep a deleted narinfo's NAR this long, as caches may still serve the narinfo (default: narinfoMaxAge plus a minute)")
    .option('--dry-run', 'print what would be deleted, delete nothing')
    .option('--force', 'run even though another run seems to be in progress (one that died)')
    .option('--mark-expected <count>', 'chunk-level objects to size the mark filter for (old layout; more are taken at the same rate, in more memory)', count('--mark-expected'), APPROXIMATE_SET_DEFAULTS.expected)
    .option('--mark-false-positives <rate>', 'the share of garbage chunk-level objects the mark filter may keep until a later run', rate('--mark-false-positives'), APPROXIMATE_SET_DEFAULTS.falsePositiveRate)
    .option('--json', 'print the report as JSON')
    .action(async (flags: SelectionFlags & { retain: string; maxSize?: string; grace: string; settle?: string; dryRun?: boolean; force?: boolean; json?: boolean; markExpected: number; markFalsePositives: number }) => {
      await withStore(flags, async (cas, config, stack) => {
        const started = Date.now()
        const report = await collectGarbage(cas, {
          retain: duration('--retain', flags.retain),
          ...(flags.maxSize === undefined ? {} : { maxSize: size('--max-size', flags.maxSize) }),
          grace: duration('--grace', flags.grace),
          settle: flags.settle === undefined ? defaultSettle(config.narinfoMaxAge) : duration('--settle', flags.settle),
          dryRun: flags.dryRun,
          force: flags.force,
          markSet: { expected: flags.markExpected, falsePositiveRate: flags.markFalsePositives },
          storeDir: config.storeDir,
          instances: stack.instances.values(),
        })
        if (!report.dryRun) await recordGc(cas.store, report, started, Date.now())
        print(flags.json ? JSON.stringify(report, null, 2) : formatGcReport(report))
      })
    })

  const pin = program.command('pin').description('named sets of store paths whose closures garbage collection keeps')
  selecting(pin.command('add'))
    .description('pin store paths (and so their closures) under a name; adds to an existing pin')
    .argument('<name>')
    .argument('<store-paths...>')
    .action(async (name: string, paths: string[], flags: SelectionFlags) => {
      await withStore(flags, async (cas, config) => {
        const pinned = await new Pins(cas.store, config.storeDir).add(name, paths)
        print(`pin ${pinned.name}: ${pinned.paths.length} paths`)
      })
    })
  selecting(pin.command('rm'))
    .description('remove a pin (its paths are then kept only by retention)')
    .argument('<name>')
    .action(async (name: string, flags: SelectionFlags) => {
      await withStore(flags, async (cas, config) => {
        if (!(await new Pins(cas.store, config.storeDir).remove(name))) throw new NixcasError('BAD_REQUEST', `no pin named ${name}`)
      })
    })
  selecting(pin.command('list'))
    .description('print every pin and its store paths')
    .action(async (flags: SelectionFlags) => {
      await withStore(flags, async (cas, config) => {
        for await (const pinned of new Pins(cas.store, config.storeDir).list()) print([pinned.name, ...pinned.paths.map((path) => `  ${path}`)].join('\n'))
      })
    })

  selecting(program.command('verify'))
    .description('re-read every path: closures complete, every NAR renders to its NarHash, every copy of every data pack matches its digest; exits 1 on findings')
    .option('--repair', 'replace corrupt copies of data packs by a good copy from another store of the composition, then verify again')
    .action(async (flags: SelectionFlags & { repair?: boolean }) => {
      await withStore(flags, async (cas, _config, stack) => {
        // With one backend the root (with its retries) reads it; with several, each copy is read.
        const holders = copyHolders(stack.instances.values())
        const copies = holders.length > 1 ? holders : undefined
        const verify = (): Promise<VerifyReport> => verifyStore(cas, { copies, onFinding: (finding) => print(`${finding.key}: ${finding.problem}`) })
        let report = await verify()
        print(`verified ${report.paths} paths, ${report.nars} NARs, ${report.dataPacks} data pack copies: ${report.findings.length} findings`)
        if (flags.repair && report.findings.length > 0) {
          for (const action of await repairFindings(report.findings, holders)) {
            if (action.repaired.length > 0) print(`${action.key}: corrupt copy replaced in ${action.repaired.join(', ')}`)
            if (action.unrepaired.length > 0) print(`${action.key}: no good copy anywhere; left in ${action.unrepaired.join(', ')}`)
          }
          report = await verify()
          print(`after repair: ${report.findings.length} findings`)
        }
        if (report.findings.length > 0) process.exitCode = 1
      })
    })

  selecting(program.command('stats'))
    .description('paths, logical and stored bytes, objects by kind (scans the store; recorded for /metrics)')
    .option('--json', 'print them as JSON')
    .action(async (flags: SelectionFlags & { json?: boolean }) => {
      await withStore(flags, async (cas) => {
        const stats = await storeStats(cas)
        await writeStats(cas.store, { ...stats, taken: Date.now(), source: 'stats' })
        print(flags.json ? JSON.stringify(stats, null, 2) : formatStats(stats))
      })
    })

  selecting(program.command('delete'))
    .description("remove store paths' narinfos (their objects go at the next gc); refused when a path that stays, or a pin, needs one")
    .argument('<store-paths...>')
    .option('--force', 'delete even when other paths reference them')
    .action(async (paths: string[], flags: SelectionFlags & { force?: boolean }) => {
      await withStore(flags, async (cas, config) => {
        const result = await deletePaths(cas, paths, { storeDir: config.storeDir, force: flags.force })
        for (const path of result.deleted) print(`deleted ${path}`)
        for (const path of result.absent) print(`not in the cache: ${path}`)
      })
    })
}

/**
 * Child processes and temporary state for benchmarks that drive real servers. Everything
 * started is registered with a Cleanup and stopped on success, failure or Ctrl-C, and every
 * wait has a bound, so a failed run leaves no nginx, nixcas or curl behind and never hangs.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, openSync } from 'node:fs'

type Task = () => Promise<unknown> | void

/** Rejects with `what` when `promise` has not settled after `ms`. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer after ${Math.round(ms / 1000)} s`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Teardown tasks run last-registered first (servers stop before their directories go), and
 * the children still alive, killed synchronously if the process exits without running them.
 * Its `teardown` has the shape the test helpers (s3rver, faulty proxy) expect of tap's `t`.
 */
export class Cleanup {
  readonly #tasks: Task[] = []
  readonly #children = new Set<ChildProcess>()

  teardown(task: Task): void {
    this.#tasks.push(task)
  }

  track(child: ChildProcess): void {
    this.#children.add(child)
    child.once('exit', () => this.#children.delete(child))
  }

  /** A failing or hanging task is reported and does not keep the others from running. */
  async run(): Promise<void> {
    for (let task = this.#tasks.pop(); task; task = this.#tasks.pop()) {
      try {
        await withTimeout(Promise.resolve().then(task), 30_000, 'cleanup task')
      } catch (error) {
        console.error(`cleanup: ${error instanceof Error ? error.message : String(error)}`)
      }
    }
    this.killAll()
  }

  /** Last resort, safe in an 'exit' handler: SIGKILL to every child still running. */
  killAll(): void {
    for (const child of this.#children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }

  /** Runs the cleanup on SIGINT/SIGTERM and kills children on exit; returns the uninstaller. */
  installSignalHandlers(): () => void {
    const onSignal = (signal: NodeJS.Signals): void => {
      console.error(`\n${signal}: stopping servers and removing temporary files`)
      void this.run().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143))
    }
    const onExit = (): void => this.killAll()
    process.once('SIGINT', onSignal)
    process.once('SIGTERM', onSignal)
    process.once('exit', onExit)
    return () => {
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
      process.off('exit', onExit)
    }
  }
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv
  cwd?: string
  timeoutMs: number
  /** Send stdout to this file (e.g. /dev/null) instead of collecting it. */
  stdoutFile?: string
}

const tail = (text: string, chars = 2000): string => (text.length > chars ? `…${text.slice(-chars)}` : text)

/** Runs a command to completion; rejects with its stderr on failure, and kills it on timeout. */
export function runCommand(cleanup: Cleanup, command: string, args: string[], options: RunOptions): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const out = options.stdoutFile === undefined ? 'pipe' : openSync(options.stdoutFile, 'w')
    let child: ChildProcess
    try {
      child = spawn(command, args, { env: options.env ?? process.env, cwd: options.cwd, stdio: ['ignore', out, 'pipe'] })
    } finally {
      if (typeof out === 'number') closeSync(out)
    }
    cleanup.track(child)
    let stdout = ''
    let stderr = ''
    child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr?.on('data', (chunk: Buffer) => (stderr = tail(stderr + chunk.toString(), 64_000)))
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      child.kill('SIGKILL')
    }, options.timeoutMs)
    child.on('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      if (timedOut) reject(new Error(`${command} ${args.slice(0, 3).join(' ')}…: killed after ${Math.round(options.timeoutMs / 1000)} s\n${tail(stderr)}`))
      else if (code === 0) resolve({ stdout, stderr })
      else reject(new Error(`${command} ${args.slice(0, 3).join(' ')}… exited with ${code ?? signal}\n${tail(stderr)}`))
    })
  })
}

/** Seconds `work` took. */
export async function timed(work: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint()
  await work()
  return Number(process.hrtime.bigint() - start) / 1e9
}

export interface Daemon {
  pid: number
  /** Resolves with the exit code (or signal) once the process has exited. */
  exited: Promise<number | string>
  /** SIGTERM, then SIGKILL if it has not exited after `graceMs`. */
  stop(graceMs?: number): Promise<void>
}

/** Starts a long-running process whose output goes to `logFile`; it is stopped by the cleanup. */
export function startDaemon(cleanup: Cleanup, command: string, args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; logFile: string }): Daemon {
  const log = openSync(options.logFile, 'a')
  let child: ChildProcess
  try {
    child = spawn(command, args, { env: options.env ?? process.env, cwd: options.cwd, stdio: ['ignore', log, log] })
  } finally {
    closeSync(log)
  }
  cleanup.track(child)
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'))
    child.once('error', (error) => resolve(error.message))
  })
  const running = (): boolean => child.exitCode === null && child.signalCode === null
  const stop = async (graceMs = 15_000): Promise<void> => {
    if (!running()) return
    child.kill('SIGTERM')
    const done = await Promise.race([exited.then(() => true), sleep(graceMs).then(() => false)])
    if (done || !running()) return
    child.kill('SIGKILL')
    await withTimeout(exited, 5_000, `${command} after SIGKILL`)
  }
  cleanup.teardown(() => stop())
  if (child.pid === undefined) throw new Error(`${command} did not start`)
  return { pid: child.pid, exited, stop }
}

/** Polls `ready` every 100 ms until it is true; fails when `daemon` exits first or after `ms`. */
export async function waitUntil(what: string, ready: () => Promise<boolean>, daemon: Daemon, ms: number): Promise<void> {
  let exit: number | string | undefined
  void daemon.exited.then((code) => (exit = code))
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (exit !== undefined) throw new Error(`${what} exited (${exit}) before it was ready`)
    if (await ready().catch(() => false)) return
    await sleep(100)
  }
  throw new Error(`${what} not ready after ${Math.round(ms / 1000)} s`)
}

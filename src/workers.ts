import cluster, { type Worker } from 'node:cluster'
import { pino, type Logger } from 'pino'
import type { ServerConfig } from './config.ts'

/**
 * `workers` > 1: one primary process that serves nothing and N server processes that share
 * its listening socket (node:cluster hands each new connection to the next worker). Each
 * worker is a whole server (its own caches, ingest pool and counters) on the same store,
 * exactly as replicas behind a load balancer are: nothing is shared but the store, so
 * everything that holds for replicas (a push through one is visible through another, its
 * narinfo cache converges within a minute, garbage collection coordinates through leases)
 * holds for workers.
 *
 * The primary replaces a worker that dies once serving, gives up (exit 1) when one dies
 * before it ever listened (a bad port or store would only die again), and on SIGINT or
 * SIGTERM stops them all gracefully, each finishing its requests in `shutdownTimeout`.
 */
export async function serveWorkers(config: ServerConfig, logger: Logger = pino({ level: config.logLevel })): Promise<void> {
  if (cluster.isWorker) {
    // A signal sent to the primary alone (a service manager's) reaches the workers as this
    // message; one that comes while the server is still starting stops it once it is up.
    let started = false
    let stopAsked = false
    const stopSelf = (): boolean => process.kill(process.pid, 'SIGTERM')
    process.on('message', (message: { nixcas?: string }) => {
      if (message.nixcas !== 'stop') return
      stopAsked = true
      if (started) stopSelf()
    })
    const { startServer } = await import('./server.ts')
    try {
      await startServer(config, logger)
    } finally {
      // The channel to the primary must not keep a worker alive once its server has closed (or never opened).
      process.channel?.unref()
    }
    started = true
    if (stopAsked) stopSelf()
    return
  }

  const listening = new Set<Worker>()
  let stopping = false
  const fork = (): void => {
    cluster.fork()
  }
  cluster.on('listening', (worker, address) => {
    listening.add(worker)
    if (listening.size === config.workers) logger.info({ workers: config.workers }, `${config.workers} workers listening on ${address.address ?? config.host}:${address.port}`)
  })
  cluster.on('exit', (worker, code, signal) => {
    const served = listening.delete(worker)
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) logger.info('all workers stopped')
      return
    }
    if (!served) {
      logger.error({ worker: worker.process.pid, code, signal }, 'a worker exited before it listened; stopping')
      stop('worker failed')
      process.exitCode = 1
      return
    }
    logger.error({ worker: worker.process.pid, code, signal }, 'a worker exited; starting another')
    fork()
  })
  const stop = (reason: string): void => {
    if (stopping) return
    stopping = true
    logger.info({ reason }, 'stopping the workers')
    for (const worker of Object.values(cluster.workers ?? {})) {
      if (worker?.isConnected()) worker.send({ nixcas: 'stop' })
    }
    // Each worker bounds its own shutdown; this bounds a worker that hangs before it could.
    setTimeout(() => {
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGKILL')
      process.exitCode = 1
    }, config.shutdownTimeout + 5_000).unref()
  }
  process.once('SIGINT', () => stop('SIGINT'))
  process.once('SIGTERM', () => stop('SIGTERM'))
  for (let index = 0; index < config.workers; index++) fork()
}

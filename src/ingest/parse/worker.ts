import { parentPort, threadId } from 'node:worker_threads'
import type { FromWorker, ToWorker } from './wire.ts'
import { WorkerSession } from './worker-session.ts'

/**
 * An ingest worker's entry: many uploads at once, each a session keyed by the id the pool
 * gave it. Messages for a session that has already ended are ignored.
 */
if (!parentPort) throw new Error('src/ingest/parse/worker.ts runs only as a worker thread')
const port = parentPort
const sessions = new Map<number, WorkerSession>()
/** Decoded bytes of the sessions that have ended. */
let retiredDecodedBytes = 0

const post = (message: FromWorker, transfer: ArrayBuffer[] = []): void => port.postMessage(message, transfer)

port.on('message', (message: ToWorker) => {
  switch (message.kind) {
    case 'open': {
      const session = new WorkerSession(message, post)
      sessions.set(message.id, session)
      void session.run().finally(() => {
        sessions.delete(message.id)
        retiredDecodedBytes += session.progress.outputBytes
      })
      break
    }
    case 'input': {
      const input = sessions.get(message.id)?.input
      // Structured clone delivers plain Uint8Arrays; the decoders want Buffers (a view, no copy).
      if (input) for (const bytes of message.pieces) input.push(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))
      break
    }
    case 'end':
      sessions.get(message.id)?.input.end()
      break
    case 'waiting':
      sessions.get(message.id)?.waiting()
      break
    case 'credit':
      sessions.get(message.id)?.grant(message.credit)
      break
    case 'cancel':
      sessions.get(message.id)?.cancel()
      break
    case 'stats': {
      let waitingForCredit = 0
      let queuedInputBytes = 0
      let decodedBytes = retiredDecodedBytes
      for (const session of sessions.values()) {
        if (session.waitingForCredit) waitingForCredit++
        queuedInputBytes += session.input.queued
        decodedBytes += session.progress.outputBytes
      }
      post({ kind: 'stats', request: message.request, stats: { threadId, sessions: sessions.size, waitingForCredit, decodedBytes, queuedInputBytes } })
      break
    }
  }
})

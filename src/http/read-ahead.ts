import type { Readable } from 'node:stream'
import type { ByteBudget } from '../budget.ts'
import { NixcasError } from '../errors.ts'

/**
 * An upload body read from its socket ahead of its consumer, up to `windowBytes`.
 *
 * Why: a decoder that expands a small body slowly (a compression bomb: 3 MB of xz that is
 * 20 GiB of NAR) reads the body at its own pace, so the body's tail, and the client's FIN
 * behind it, stay unread in the kernel. A socket that is not read never reports that its
 * peer left, and the server would decode on for minutes for nobody. Read ahead, a body that
 * fits the window is in as soon as it arrives, and the socket's close is seen at once.
 *
 * What is read ahead is taken from `budget` while it has room, never waited for: when the
 * budget is spent, reading ahead stops (at most one piece over) and the body is read at the
 * consumer's pace, as without this. Without a budget, the window alone bounds it (for a
 * body whose room was taken before it was read).
 *
 * With `idleMs`, a consumer that has waited that long for the next byte gets an
 * UPLOAD_TIMEOUT (408): a client that declared a body and sends none (as Nix does when it
 * retries a PUT whose body it already sent) must not hold the request forever. Time the
 * consumer spends elsewhere, with the socket paused, does not count.
 */
export async function* readAhead(source: Readable, windowBytes: number, budget?: ByteBudget, idleMs = 0): AsyncGenerator<Uint8Array> {
  const queue: { bytes: Buffer; budgeted: boolean }[] = []
  let queued = 0
  let ended = false
  let failure: { error: unknown } | undefined
  let wake: (() => void) | undefined
  const notify = (): void => {
    wake?.()
    wake = undefined
  }
  const onData = (bytes: Buffer): void => {
    const budgeted = budget?.tryAcquire(bytes.length, false) ?? false
    queue.push({ bytes, budgeted })
    queued += bytes.length
    if ((budget !== undefined && !budgeted) || queued >= windowBytes) source.pause()
    notify()
  }
  const onEnd = (): void => {
    ended = true
    notify()
  }
  const onError = (error: unknown): void => {
    failure ??= { error }
    notify()
  }
  source.on('data', onData)
  source.once('end', onEnd)
  source.once('error', onError)
  // A request stream that closes before its end: the client went away mid-body.
  const onClose = (): void => {
    if (!ended) onError(new NixcasError('ABORTED', 'the client went away before the body ended'))
  }
  source.once('close', onClose)
  const waitForData = async (ms: number): Promise<void> => {
    let timer: NodeJS.Timeout | undefined
    await new Promise<void>((resolve) => {
      wake = resolve
      if (ms > 0) timer = setTimeout(() => onError(new NixcasError('UPLOAD_TIMEOUT', `no byte of the body arrived for ${ms / 1000} s`)), ms)
    })
    clearTimeout(timer)
  }
  try {
    for (;;) {
      const next = queue.shift()
      if (next !== undefined) {
        queued -= next.bytes.length
        if (next.budgeted) budget?.release(next.bytes.length)
        if (queued < windowBytes && source.isPaused()) source.resume()
        yield next.bytes
        continue
      }
      if (failure !== undefined) throw failure.error
      if (ended) return
      if (source.isPaused()) source.resume()
      await waitForData(idleMs)
    }
  } finally {
    source.off('data', onData)
    source.off('end', onEnd)
    source.off('error', onError)
    source.off('close', onClose)
    for (const piece of queue) if (piece.budgeted) budget?.release(piece.bytes.length)
    queue.length = 0
  }
}

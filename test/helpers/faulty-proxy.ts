import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'

export type Fate = 'pass' | 'fail' | 'reset' | 'resetMidBody' | 'stall'

export interface Faults {
  /** Share of requests answered 503 at once. */
  fail?: number
  /** Share of requests whose connection is dropped before any answer. */
  reset?: number
  /** Share of requests whose connection is dropped half-way through the response body. */
  resetMidBody?: number
  /** Share of requests never answered. */
  stall?: number
  /**
   * The most faults one request (method, URL and Range) meets in a row; the next
   * attempt passes. Set it below the client's attempts and every request succeeds.
   */
  maxFaultsInARow?: number
  /** Every request answered 503: the server is down. */
  down?: boolean
  /** Milliseconds added before each request is forwarded (a far-away server). */
  latency?: number
  /** Methods the faults apply to (default: all). */
  methods?: string[]
  /** Every response body forwarded in pieces of at most this many bytes, one per turn of the event loop (an upstream that trickles). */
  trickle?: number
}

export interface FaultyProxy {
  endpoint: string
  faults: Faults
  /** How many requests met each fate; a body that was too short to cut counts as `pass`. */
  counts: Partial<Record<Fate, number>>
}

const FAULTS = ['fail', 'reset', 'resetMidBody', 'stall'] as const

/**
 * Fates by error diffusion rather than at random: each fault's share accrues as credit
 * per request and the fault with a whole credit is dealt next. The same requests meet
 * the same faults on every run, each fault with share p occurs within the first ⌈1/p⌉
 * requests, and the shares hold exactly over any long run.
 */
class Dealer {
  private readonly credit = new Map<Fate, number>()

  next(faults: Faults): Fate {
    let chosen: Fate = 'pass'
    let most = 1 - 1e-9 // shares such as 0.1 do not add up to exactly 1
    for (const fate of FAULTS) {
      const credit = (this.credit.get(fate) ?? 0) + (faults[fate] ?? 0)
      this.credit.set(fate, credit)
      if (credit >= most) {
        chosen = fate
        most = credit
      }
    }
    if (chosen !== 'pass') this.credit.set(chosen, most - 1)
    return chosen
  }
}

/** Passes bytes on in pieces of at most `size`, yielding to the event loop between them, so each is a write of its own. */
function trickled(size: number): (source: AsyncIterable<Buffer>) => AsyncGenerator<Buffer> {
  return async function* (source) {
    for await (const chunk of source) {
      for (let offset = 0; offset < chunk.length; offset += size) {
        yield chunk.subarray(offset, offset + size)
        await new Promise((resolve) => setImmediate(resolve))
      }
    }
  }
}

/**
 * An HTTP proxy in front of a real server that makes a share of requests fail: 503s,
 * dropped connections (before or mid-body) and stalls; it can also add latency, or pass
 * bodies on a few bytes at a time. The server behind it is real;
 * the faults are dealt deterministically (see Dealer), so tests built on it do not flake.
 */
export async function startFaultyProxy(
  t: { teardown: (fn: () => Promise<void> | void) => void },
  target: string,
  faults: Faults = {},
): Promise<FaultyProxy> {
  const upstream = new URL(target)
  const sockets = new Set<Socket>()
  const proxy: FaultyProxy = { endpoint: '', faults, counts: {} }
  const dealer = new Dealer()
  /** Faults in a row per request identity, for maxFaultsInARow. */
  const streaks = new Map<string, number>()

  const identity = (req: IncomingMessage): string => `${req.method} ${req.url} ${req.headers.range ?? ''}`

  const record = (req: IncomingMessage, fate: Fate): void => {
    proxy.counts[fate] = (proxy.counts[fate] ?? 0) + 1
    if (fate === 'pass') streaks.delete(identity(req))
    else streaks.set(identity(req), (streaks.get(identity(req)) ?? 0) + 1)
  }

  const fate = (req: IncomingMessage): Fate => {
    const { down = false, methods, maxFaultsInARow = Infinity } = proxy.faults
    if (methods && !methods.includes(req.method ?? '')) return 'pass'
    if (down) return 'fail'
    if ((streaks.get(identity(req)) ?? 0) >= maxFaultsInARow) return 'pass'
    return dealer.next(proxy.faults)
  }

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const chosen = fate(req)
    // A mid-body cut is recorded once the body is known to be long enough to cut.
    if (chosen !== 'resetMidBody') record(req, chosen)
    if (chosen === 'fail') {
      req.resume()
      res.writeHead(503, { 'content-type': 'application/xml', 'retry-after': '0' })
      res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>ServiceUnavailable</Code><Message>injected</Message></Error>')
      return
    }
    if (chosen === 'reset') {
      req.socket.destroy()
      return
    }
    if (chosen === 'stall') return // held until the proxy closes
    if (proxy.faults.latency) setTimeout(() => forward(req, res, chosen), proxy.faults.latency)
    else forward(req, res, chosen)
  }

  const forward = (req: IncomingMessage, res: ServerResponse, chosen: Fate): void => {
    const upstreamRequest = request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers)
        const length = Number(answer.headers['content-length'] ?? 0)
        const cut = chosen === 'resetMidBody' && req.method !== 'HEAD' && length > 1
        if (chosen === 'resetMidBody') record(req, cut ? 'resetMidBody' : 'pass')
        const trickle = proxy.faults.trickle
        const done = cut ? cutHalfway(answer, res, Math.floor(length / 2)) : trickle ? pipeline(answer, trickled(trickle), res) : pipeline(answer, res)
        done.catch(() => res.destroy())
      },
    )
    upstreamRequest.on('error', () => res.destroy())
    pipeline(req, upstreamRequest).catch(() => res.destroy())
  }

  const server = createServer(handle)
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  proxy.endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      }),
  )
  return proxy
}

/**
 * Sends the first `half` bytes of the answer, waits until they reached the socket, then
 * drops the connection: the client sees headers and part of the body, never a bare hang-up
 * (destroying with writes still queued would discard them).
 */
async function cutHalfway(answer: IncomingMessage, res: ServerResponse, half: number): Promise<void> {
  let sent = 0
  async function* firstHalf(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    for await (const chunk of source) {
      const part = chunk.subarray(0, half - sent)
      sent += part.length
      yield part
      if (sent >= half) return
    }
  }
  const sink = new Writable({
    write: (chunk: Buffer, _encoding, written) => void res.write(chunk, (error) => written(error ?? null)),
    final: (finished) => {
      res.socket?.destroy()
      finished()
    },
  })
  await pipeline(answer, firstHalf, sink)
}

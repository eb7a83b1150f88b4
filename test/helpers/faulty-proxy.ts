import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { pipeline } from 'node:stream/promises'

export interface Faults {
  /** Share of requests answered 503 at once. */
  fail?: number
  /** Share of requests whose connection is dropped before any answer. */
  reset?: number
  /** Share of requests whose connection is dropped half-way through the response body. */
  resetMidBody?: number
  /** Share of requests never answered. */
  stall?: number
  /** Every request answered 503: the server is down. */
  down?: boolean
  /** Milliseconds added before each request is forwarded (a far-away server). */
  latency?: number
  /** Methods the faults apply to (default: all). */
  methods?: string[]
}

export interface FaultyProxy {
  endpoint: string
  faults: Faults
  /** How many requests each fate met. */
  counts: Record<string, number>
}

/**
 * An HTTP proxy in front of a real server that makes a share of requests fail: 503s,
 * dropped connections (before or mid-body) and stalls. The server behind it is real.
 */
export async function startFaultyProxy(
  t: { teardown: (fn: () => Promise<void> | void) => void },
  target: string,
  faults: Faults = {},
): Promise<FaultyProxy> {
  const upstream = new URL(target)
  const sockets = new Set<Socket>()
  const proxy: FaultyProxy = { endpoint: '', faults, counts: {} }

  const fate = (req: IncomingMessage): string => {
    const { fail = 0, reset = 0, resetMidBody = 0, stall = 0, down = false, methods } = proxy.faults
    if (methods && !methods.includes(req.method ?? '')) return 'pass'
    if (down) return 'fail'
    let roll = Math.random()
    for (const [name, share] of [['fail', fail], ['reset', reset], ['resetMidBody', resetMidBody], ['stall', stall]] as const) {
      if (roll < share) return name
      roll -= share
    }
    return 'pass'
  }

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const chosen = fate(req)
    proxy.counts[chosen] = (proxy.counts[chosen] ?? 0) + 1
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

  const forward = (req: IncomingMessage, res: ServerResponse, chosen: string): void => {
    const upstreamRequest = request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers)
        const length = Number(answer.headers['content-length'] ?? 0)
        if (chosen === 'resetMidBody' && req.method !== 'HEAD' && length > 1) {
          let sent = 0
          answer.on('data', (chunk: Buffer) => {
            if (sent + chunk.length >= length / 2) {
              res.write(chunk.subarray(0, Math.max(0, Math.floor(length / 2) - sent)))
              res.socket?.destroy()
              answer.destroy()
              return
            }
            sent += chunk.length
            res.write(chunk)
          })
          return
        }
        pipeline(answer, res).catch(() => undefined)
      },
    )
    upstreamRequest.on('error', () => res.destroy())
    pipeline(req, upstreamRequest).catch(() => undefined)
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

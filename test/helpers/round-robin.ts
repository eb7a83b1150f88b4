import { request as httpRequest, createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { pipeline } from 'node:stream/promises'

/**
 * A load balancer in front of replicas: each request (not each connection, so keep-alive
 * clients reach every replica too) goes to the next target in turn, and its answer is
 * streamed back as it comes. Closed when the test ends.
 */
export async function startRoundRobin(t: { teardown: (fn: () => Promise<void>) => void }, targets: readonly string[]): Promise<{ url: string; served: number[] }> {
  const served = targets.map(() => 0)
  let next = 0
  const server = createServer((request, response) => {
    const index = next++ % targets.length
    served[index] = (served[index] ?? 0) + 1
    const upstream = httpRequest(new URL(request.url ?? '/', targets[index]), { method: request.method, headers: request.headers }, (answer) => {
      response.writeHead(answer.statusCode ?? 502, answer.headers)
      pipeline(answer, response).catch(() => response.destroy())
    })
    upstream.on('error', () => (response.headersSent ? response.destroy() : response.writeHead(502).end()))
    pipeline(request, upstream).catch(() => upstream.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, served }
}

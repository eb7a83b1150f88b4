import { request } from 'node:http'

/** An HTTP answer as it came over the socket: no fetch, so no header or encoding is added or undone. */
export interface RawAnswer {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: Buffer
}

/** A request through node:http, which (unlike inject) reaches what answers before Fastify. */
export function rawGet(url: string, options: { method?: string; headers?: Record<string, string> } = {}): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? 'GET', headers: options.headers }, (response) => {
      const parts: Buffer[] = []
      response.on('data', (part: Buffer) => parts.push(part))
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(parts) }))
      response.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

/** The headers of an answer, without the ones Node adds to every response. */
export function ownHeaders(answer: { headers: Record<string, unknown> }): Record<string, unknown> {
  const { date: _date, connection: _connection, 'keep-alive': _keepAlive, ...rest } = answer.headers
  return rest
}

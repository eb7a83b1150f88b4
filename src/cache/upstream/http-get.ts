import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'

/** Redirects followed per GET (curl's default in Nix is more; binary caches use one or two). */
const MAX_REDIRECTS = 5
const REDIRECTS = new Set([301, 302, 303, 307, 308])

/** A GET's answer: its status and its body as a Node stream (destroy it if unread). */
export interface GetAnswer {
  status: number
  /** The URL that answered, after redirects. */
  url: URL
  body: IncomingMessage
}

/**
 * GETs over node:http and node:https with keep-alive agents of their own. A NAR body is
 * read as a Node stream: no web-stream layer per piece (what `fetch` adds costs a relay a
 * large share of its CPU), and socket reads go straight to the consumer. Redirects are
 * followed, up to MAX_REDIRECTS, to http and https URLs only.
 */
export class HttpGetter {
  private readonly agents = {
    'http:': new HttpAgent({ keepAlive: true }),
    'https:': new HttpsAgent({ keepAlive: true }),
  }

  async get(url: URL, headers: Record<string, string>, signal: AbortSignal): Promise<GetAnswer> {
    for (let redirects = 0; ; redirects++) {
      const answer = await this.getOnce(url, headers, signal)
      const location = answer.body.headers.location
      if (!REDIRECTS.has(answer.status) || location === undefined) return answer
      answer.body.destroy()
      if (redirects >= MAX_REDIRECTS) throw new Error(`more than ${MAX_REDIRECTS} redirects`)
      url = new URL(location, url)
    }
  }

  private getOnce(url: URL, headers: Record<string, string>, signal: AbortSignal): Promise<GetAnswer> {
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return Promise.reject(new Error(`${url.href}: only http and https URLs can be fetched`))
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest
    return new Promise((resolve, reject) => {
      const request = send(url, { method: 'GET', headers, signal, agent: this.agents[url.protocol as 'http:' | 'https:'] }, (body) => {
        resolve({ status: body.statusCode ?? 0, url, body })
      })
      request.once('error', reject)
      request.end()
    })
  }

  /** Closes idle connections (the server is closing). */
  close(): void {
    for (const agent of Object.values(this.agents)) agent.destroy()
  }
}

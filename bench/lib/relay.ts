/**
 * The least a pull-through server can do: a bare HTTP relay that forwards each GET to an
 * upstream and streams the answer back, bytes unread, unchecked and unkept. The pull-through
 * benchmark runs it as its own process beside nixcas, so the cost of relaying bytes through
 * one Node process (two more socket copies, on the same cores as the client) is measured in
 * the same run as the first download through nixcas.
 *
 *     node bench/lib/relay.ts UPSTREAM PORT
 */
import { get, createServer } from 'node:http'
import { pipeline } from 'node:stream/promises'

const [upstream, port] = process.argv.slice(2)
if (upstream === undefined || port === undefined) throw new Error('usage: relay.ts UPSTREAM PORT')

createServer((request, response) => {
  get(new URL(request.url ?? '/', upstream), (answer) => {
    response.writeHead(answer.statusCode ?? 502, answer.headers)
    pipeline(answer, response).catch(() => response.destroy())
  }).on('error', () => response.writeHead(502).end())
}).listen(Number(port), '127.0.0.1')

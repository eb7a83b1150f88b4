import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { STORED_LOG_ENCODING, type LogRecord } from '../src/cache/build-logs.ts'
import { digestHex } from '../src/castore/digest.ts'
import { compressStream, negotiateEncoding, type ContentEncoding } from '../src/http/encoding.ts'
import { recordFailure } from '../src/http/request-log.ts'
import { sendNotFound } from '../src/http/send.ts'
import { clientGone, uploadBody } from '../src/http/upload-body.ts'
import { requireWrite } from '../src/plugins/access.ts'

type LogRequest = FastifyRequest<{ Params: { name: string } }>

/** Whether an Accept-Encoding header accepts `token` (q > 0, by name or by `*`). */
function accepts(header: string | undefined, token: string): boolean {
  let named: number | undefined
  let any: number | undefined
  for (const part of (header ?? '').split(',')) {
    const [name = '', ...params] = part.trim().toLowerCase().split(';')
    const q = params.map((param) => /^\s*q=([\d.]+)\s*$/.exec(param)?.[1]).find((value) => value !== undefined)
    const weight = q === undefined ? 1 : Number(q)
    if (name.trim() === token) named = weight
    else if (name.trim() === '*') any = weight
  }
  return (named ?? any ?? 0) > 0
}

/**
 * How a log goes out: the stored brotli bytes when the client takes br, else re-encoded
 * in an encoding it does take, else identity (Nix itself sends no Accept-Encoding).
 */
function chooseEncoding(request: LogRequest): ContentEncoding | 'stored' | undefined {
  const header = request.headers['accept-encoding']
  if (accepts(header, STORED_LOG_ENCODING)) return 'stored'
  return negotiateEncoding(header)
}

function logHeaders(fastify: FastifyInstance, reply: FastifyReply, record: LogRecord): void {
  reply
    .type('text/plain; charset=utf-8')
    .header('vary', 'Accept-Encoding')
    .header('etag', `"${digestHex(record.digest)}"`)
    // A derivation may be rebuilt and its log uploaded again.
    .header('cache-control', `public, max-age=${fastify.settings.narinfoMaxAge}`)
}

/** GET, HEAD and PUT of `log/<drv basename>`: build logs (`nix store copy-log --to`, `nix log`). */
export default async function logRoutes(fastify: FastifyInstance): Promise<void> {
  fastify.removeAllContentTypeParsers()
  fastify.addContentTypeParser('*', (_request, _payload, done) => done(null))

  fastify.route<{ Params: { name: string } }>({
    method: 'HEAD',
    url: '/log/:name',
    handler: async (request, reply) => {
      const record = await fastify.cache.logs.record(request.params.name)
      if (record === undefined) return sendNotFound(reply, 'no such log')
      logHeaders(fastify, reply, record)
      const encoding = chooseEncoding(request)
      if (encoding === 'stored') return reply.header('content-encoding', STORED_LOG_ENCODING).header('content-length', record.storedSize).send()
      if (encoding !== undefined) return reply.header('content-encoding', encoding).send()
      return reply.header('content-length', record.size).send()
    },
  })

  fastify.get<{ Params: { name: string } }>('/log/:name', { exposeHeadRoute: false }, async (request, reply) => {
    const signal = clientGone(request, reply)
    const record = await fastify.cache.logs.record(request.params.name)
    if (record === undefined) return sendNotFound(reply, 'no such log')
    logHeaders(fastify, reply, record)
    if (request.headers['if-none-match'] === `"${digestHex(record.digest)}"`) return reply.code(304).send()
    const encoding = chooseEncoding(request)
    if (encoding === 'stored') {
      const stored = await fastify.cache.logs.stored(record, signal)
      return reply.header('content-encoding', STORED_LOG_ENCODING).header('content-length', record.storedSize).send(Readable.from(stored))
    }
    const text = Readable.from(await fastify.cache.logs.text(record, signal))
    if (encoding === undefined) return reply.header('content-length', record.size).send(text)
    const compressor = compressStream(encoding)
    pipeline(text, compressor).catch((error: unknown) => recordFailure(request, error))
    return reply.header('content-encoding', encoding).send(compressor)
  })

  fastify.put<{ Params: { name: string } }>('/log/:name', { preHandler: requireWrite }, async (request, reply) => {
    const signal = clientGone(request, reply)
    const body = uploadBody(request, { maxBytes: fastify.cache.logs.maxSize, what: 'build log' }, signal)
    await fastify.cache.logs.put(request.params.name, body, signal)
    return reply.code(204).header('cache-control', 'no-store').send()
  })
}

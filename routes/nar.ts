import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { NixcasError } from '../src/errors.ts'
import { compressStream, negotiateEncoding } from '../src/http/encoding.ts'
import { parseRange } from '../src/http/range.ts'
import { recordFailure } from '../src/http/request-log.ts'
import { sendNotFound } from '../src/http/send.ts'
import { formatNixHash } from '../src/nix/hash.ts'
import { requireWrite } from '../src/plugins/access.ts'
import type { NarRange } from '../src/render/render.ts'
import { NAR_HASH, type ServableNar } from '../src/cache/nar-service.ts'

type NarRequest = FastifyRequest<{ Params: { file: string } }>

/** NARs are served as `<sha256 in nixbase32>.nar`, the URL narinfos give. */
const servedHash = (file: string): string | undefined => (file.endsWith('.nar') && NAR_HASH.test(file.slice(0, -4)) ? file.slice(0, -4) : undefined)
const IMMUTABLE = 'public, max-age=31536000, immutable'

/** Aborted when the client goes away before the response is complete. */
function clientGone(request: FastifyRequest, reply: FastifyReply): AbortSignal {
  const controller = new AbortController()
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) controller.abort(new NixcasError('ABORTED', 'the client went away'))
  })
  request.raw.once('aborted', () => controller.abort(new NixcasError('ABORTED', 'the client went away')))
  return controller.signal
}

function narHeaders(reply: FastifyReply, etag: string): void {
  reply.type('application/x-nix-nar').header('accept-ranges', 'bytes').header('etag', etag).header('cache-control', IMMUTABLE)
}

/** GET, HEAD and PUT under /nar/. */
export default async function narRoutes(fastify: FastifyInstance): Promise<void> {
  // Uploads are streamed from request.raw by the handler, never buffered by a parser.
  fastify.removeAllContentTypeParsers()
  fastify.addContentTypeParser('*', (_request, _payload, done) => done(null))


  const lookup = async (request: NarRequest): Promise<{ nar: ServableNar; etag: string } | undefined> => {
    const hash = servedHash(request.params.file)
    const nar = hash === undefined ? undefined : await fastify.nars.find(hash)
    return nar && hash ? { nar, etag: `"${hash}"` } : undefined
  }

  fastify.route<{ Params: { file: string } }>({
    method: 'HEAD',
    url: '/nar/:file',
    handler: async (request, reply) => {
      // The index knows the size: no need to lay the NAR out.
      const hash = servedHash(request.params.file)
      const found = hash === undefined ? undefined : await fastify.nars.entry(hash)
      if (found) {
        narHeaders(reply, `"${hash}"`)
        return reply.header('content-length', found.entry.narSize).send()
      }
      // `nix copy` asks for the compressed name it is about to upload.
      if (await fastify.cache.hasUpload(request.params.file)) return reply.code(200).header('cache-control', 'no-store').send()
      return sendNotFound(reply, 'no such NAR')
    },
  })

  fastify.get<{ Params: { file: string } }>('/nar/:file', { exposeHeadRoute: false }, async (request, reply) => {
    const found = await lookup(request)
    if (!found) return sendNotFound(reply, 'no such NAR')
    const { nar, etag } = found
    const size = nar.layout.size
    narHeaders(reply, etag)
    if (request.headers['if-none-match'] === etag) return reply.code(304).send()

    const ifRange = request.headers['if-range']
    const range = ifRange === undefined || ifRange === etag ? parseRange(request.headers.range, size) : undefined
    if (range === 'unsatisfiable') return reply.code(416).header('content-range', `bytes */${size}`).header('cache-control', 'no-store').send()
    const wanted: NarRange = range ?? { start: 0, end: size }
    const signal = clientGone(request, reply)
    const served = fastify.metrics.bytesServed
    const body = fastify.nars.render(nar, wanted, signal)
    async function* counted(): AsyncGenerator<Uint8Array> {
      for await (const chunk of body) {
        served.inc({ route: 'nar' }, chunk.length)
        yield chunk
      }
    }
    if (range) {
      reply.code(206).header('content-range', `bytes ${range.start}-${range.end - 1}/${size}`)
    } else if (fastify.settings.compressNars && request.headers.range === undefined) {
      // Only a whole response may be encoded: Nix resumes a download only when it is not.
      const encoding = negotiateEncoding(request.headers['accept-encoding'])
      reply.header('vary', 'Accept-Encoding')
      if (encoding !== undefined) {
        const compressor = compressStream(encoding)
        pipeline(Readable.from(counted()), compressor).catch((error: unknown) => recordFailure(request, error))
        return reply.header('content-encoding', encoding).send(compressor)
      }
    }
    return reply.header('content-length', wanted.end - wanted.start).send(Readable.from(counted()))
  })

  fastify.put<{ Params: { file: string } }>('/nar/:file', { preHandler: requireWrite }, async (request, reply) => {
    let result
    try {
      result = await fastify.cache.putNar(request.params.file, request.raw, clientGone(request, reply))
    } catch (error) {
      fastify.metrics.ingestedNars.inc({ outcome: 'refused' })
      throw error
    }
    fastify.metrics.ingestedNars.inc({ outcome: 'ok' })
    return reply.code(201).header('cache-control', 'no-store').send({ narHash: formatNixHash(result.narHash), narSize: result.narSize })
  })
}

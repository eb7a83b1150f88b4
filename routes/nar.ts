import { Socket } from 'node:net'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { NarFile } from '../src/cache/binary-cache.ts'
import { encode } from '../src/codec/encode.ts'
import { compressStream, negotiateEncoding } from '../src/http/encoding.ts'
import { NAR_CACHE_CONTROL, NAR_TYPE } from '../src/http/fast-nar.ts'
import { parseRange } from '../src/http/range.ts'
import { recordFailure } from '../src/http/request-log.ts'
import { sendNotFound, sendPieces } from '../src/http/send.ts'
import { clientGone, uploadBody } from '../src/http/upload-body.ts'
import { formatNixHash } from '../src/nix/hash.ts'
import { isStorePathHash } from '../src/nix/store-path.ts'
import { requireWrite } from '../src/plugins/access.ts'
import type { NarRange } from '../src/render/render.ts'

type NarRequest = FastifyRequest<{ Params: { file: string } }>

/** Bytes of a NAR response waiting for the socket, past which rendering pauses. */
const BODY_BUFFER_BYTES = 256 * 1024

function narHeaders(reply: FastifyReply, etag: string | undefined): void {
  reply.type(NAR_TYPE).header('cache-control', NAR_CACHE_CONTROL)
  // Only an identity body has stable bytes to resume or revalidate.
  if (etag !== undefined) reply.header('accept-ranges', 'bytes').header('etag', etag)
}

/**
 * GET, HEAD and PUT under /nar/. `<narhash>.nar` is the NAR itself (ranges, revalidation,
 * optional Content-Encoding); every other name a NAR was uploaded under is served in the
 * compression its name says, made on the fly. A query string (`….nar?hash=…`) is ignored,
 * except by a GET of a `<narhash>.nar` known only from an upstream narinfo: that is pulled
 * through (see src/cache/upstream), and `hash` names the store path whose upstream narinfo
 * tells of it (in the URLs pulled narinfos give). A HEAD answers for stored NARs only, so a
 * push never downloads one.
 */
export default async function narRoutes(fastify: FastifyInstance): Promise<void> {
  // Uploads are streamed from request.raw by the handler, never buffered by a parser.
  fastify.removeAllContentTypeParsers()
  fastify.addContentTypeParser('*', (_request, _payload, done) => done(null))

  const served = fastify.metrics.bytesServed.series({ route: 'nar' })
  /**
   * A response body in bytes, not objects: what waits in it for the socket is bounded by
   * BODY_BUFFER_BYTES whatever the size of the pieces (an object-mode stream holds 16 of
   * them, and a piece may be a MiB-sized view of a read).
   */
  async function* countedPieces(body: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    for await (const piece of body) {
      served(piece.length)
      yield piece
    }
  }
  const counted = (body: AsyncIterable<Uint8Array>): Readable =>
    Readable.from(
      (async function* () {
        for await (const chunk of body) {
          served(chunk.length)
          yield chunk
        }
      })(),
      { objectMode: false, highWaterMark: BODY_BUFFER_BYTES },
    )

  /**
   * The NAR a name serves, as `lookup` finds it. A `<narhash>.nar` name is that NAR; only when
   * there is none is it looked up as a name uploaded (a gzip upload is `<filehash>.nar`), so
   * the common request costs no extra read.
   */
  async function locate<T>(name: string, lookup: (narHash: string) => Promise<T | undefined>): Promise<{ file: NarFile; found: T } | undefined> {
    for (const uploaded of [false, true]) {
      const file = await fastify.cache.narFile(name, { uploaded })
      const found = file && (await lookup(file.narHash))
      if (file && found) return { file, found }
      if (!file?.byHash) return undefined
    }
    return undefined
  }

  fastify.route<{ Params: { file: string } }>({
    method: 'HEAD',
    url: '/nar/:file',
    handler: async (request, reply) => {
      // The index knows the size: no need to lay the NAR out.
      const located = await locate(request.params.file, (narHash) => fastify.nars.entry(narHash))
      if (!located) return sendNotFound(reply, 'no such NAR')
      const { file, found } = located
      if (file.compression !== 'none') {
        narHeaders(reply, undefined)
        return reply.send()
      }
      narHeaders(reply, `"${file.narHash}"`)
      return reply.header('content-length', found.entry.narSize).send()
    },
  })

  fastify.get<{ Params: { file: string }; Querystring: { hash?: unknown } }>('/nar/:file', { exposeHeadRoute: false }, async (request, reply) => {
    const located = await locate(request.params.file, (narHash) => fastify.nars.find(narHash))
    if (!located) {
      // Known only from an upstream narinfo: downloaded once, served as it is stored.
      const byHash = await fastify.cache.narFile(request.params.file)
      const hint = request.query.hash
      const pulled = byHash?.byHash ? await fastify.pullThrough.open(byHash.narHash, typeof hint === 'string' && isStorePathHash(hint) ? hint : undefined) : undefined
      if (byHash && pulled) return sendIdentity(request, reply, pulled.size, (range, signal) => pulled.read(range, signal), `"${byHash.narHash}"`, keptPiece)
      return sendNotFound(reply, 'no such NAR')
    }
    const { file, found: nar } = located
    fastify.accessRecorder.nar(file.narHash)
    if (file.compression !== 'none') {
      // Any bytes that decompress to the NAR will do (Nix checks the NarHash after decoding): the codec's fast level.
      narHeaders(reply, undefined)
      const signal = clientGone(request, reply)
      return reply.send(counted(encode(fastify.nars.render(nar, undefined, signal), file.compression, { signal })))
    }
    return sendIdentity(request, reply, nar.layout.size, (range, signal) => fastify.nars.renderPooled(nar, range, signal), `"${file.narHash}"`, fastify.nars.written)
  })

  type Render = (range: NarRange, signal: AbortSignal) => AsyncIterable<Uint8Array>
  /** A pulled NAR's pieces are views of what its download keeps: nothing to give back once written. */
  const keptPiece = (): void => undefined

  /**
   * A NAR as it is, whole or a range. With `written`, render's pieces are pool buffers: an
   * uncompressed body goes straight to the socket and gives each back once written.
   */
  function sendIdentity(request: NarRequest, reply: FastifyReply, size: number, render: Render, etag: string, written?: (piece: Uint8Array) => void): FastifyReply {
    narHeaders(reply, etag)
    if (request.headers['if-none-match'] === etag) return reply.code(304).send()

    const ifRange = request.headers['if-range']
    const range = ifRange === undefined || ifRange === etag ? parseRange(request.headers.range, size) : undefined
    if (range === 'unsatisfiable') return reply.code(416).header('content-range', `bytes */${size}`).header('cache-control', 'no-store').send()
    const wanted: NarRange = range ?? { start: 0, end: size }
    const signal = clientGone(request, reply)
    if (written && (range || !fastify.settings.compressNars || request.headers.range !== undefined || negotiateEncoding(request.headers['accept-encoding']) === undefined)) {
      if (range) reply.code(206).header('content-range', `bytes ${range.start}-${range.end - 1}/${size}`)
      else if (fastify.settings.compressNars && request.headers.range === undefined) reply.header('vary', 'Accept-Encoding')
      reply.header('content-length', wanted.end - wanted.start)
      return sendPieces(request, reply, countedPieces(render(wanted, signal)), written)
    }
    const body = counted(render(wanted, signal))
    if (range) {
      reply.code(206).header('content-range', `bytes ${range.start}-${range.end - 1}/${size}`)
    } else if (fastify.settings.compressNars && request.headers.range === undefined) {
      // Only a whole response may be encoded: Nix resumes a download only when it is not.
      const encoding = negotiateEncoding(request.headers['accept-encoding'])
      reply.header('vary', 'Accept-Encoding')
      if (encoding !== undefined) {
        const compressor = compressStream(encoding)
        pipeline(body, compressor).catch((error: unknown) => recordFailure(request, error))
        return reply.header('content-encoding', encoding).send(compressor)
      }
    }
    return reply.header('content-length', wanted.end - wanted.start).send(body)
  }

  fastify.put<{ Params: { file: string } }>('/nar/:file', { preHandler: requireWrite }, async (request, reply) => {
    let result
    try {
      const signal = clientGone(request, reply)
      // The NAR's own bound (maxNarSize) is enforced by ingest, on the NAR.
      const body = uploadBody(request, { maxBytes: Infinity, what: 'NAR' }, signal)
      // Pieces read from a socket belong to no one else: they are handed over, not copied. An
      // injected request's (tests, tools) are the caller's buffers and must stay usable.
      const handOver = request.raw.socket instanceof Socket
      result = await fastify.cache.putNar(request.params.file, body, signal, { handOver })
    } catch (error) {
      fastify.metrics.ingestedNars.inc({ outcome: 'refused' })
      throw error
    }
    fastify.metrics.ingestedNars.inc({ outcome: 'ok' })
    return reply.code(201).header('cache-control', 'no-store').send({ narHash: formatNixHash(result.narHash), narSize: result.narSize })
  })
}

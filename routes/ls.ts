import type { FastifyInstance } from 'fastify'
import { checkListingUpload } from '../src/cache/listing-upload.ts'
import { NixcasError } from '../src/errors.ts'
import { sendNotFound, sendTextStream } from '../src/http/send.ts'
import { clientGone, uploadBody } from '../src/http/upload-body.ts'
import { isStorePathHash } from '../src/nix/store-path.ts'
import { requireWrite } from '../src/plugins/access.ts'

const UPLOADED_LISTING_LIMIT = 64 * 1024 * 1024

/** `<store path hash>.ls`: the JSON listing of a store path. */
export default async function listingRoutes(fastify: FastifyInstance): Promise<void> {
  // Uploads are read by the handler as a stream.
  fastify.removeAllContentTypeParsers()
  fastify.addContentTypeParser('*', (_request, _payload, done) => done(null))

  fastify.get<{ Params: { hash: string } }>('/:hash.ls', async (request, reply) => {
    const listing = await fastify.cache.listing(request.params.hash)
    if (listing === undefined) {
      return sendNotFound(reply, 'no such path')
    }
    reply.header('cache-control', `public, max-age=${fastify.settings.narinfoMaxAge}`)
    return sendTextStream(request, reply, 'application/json', listing)
  })

  /**
   * `nix copy --to '…?write-nar-listing=true'` uploads listings, before the NAR they
   * describe. Listings are served from the tree instead (always in step with the NAR), so
   * an upload is checked as it streams, to tell a client that sent a broken one, and dropped.
   */
  fastify.put<{ Params: { hash: string } }>('/:hash.ls', { preHandler: requireWrite }, async (request, reply) => {
    if (!isStorePathHash(request.params.hash)) throw new NixcasError('BAD_REQUEST', `${JSON.stringify(request.params.hash)} is not a store path hash`)
    await checkListingUpload(uploadBody(request, { maxBytes: UPLOADED_LISTING_LIMIT, what: 'listing' }, clientGone(request, reply)))
    return reply.code(204).header('cache-control', 'no-store').send()
  })
}

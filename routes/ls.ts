import type { FastifyInstance } from 'fastify'
import { NixcasError } from '../src/errors.ts'
import { sendNotFound, sendText } from '../src/http/send.ts'
import { isStorePathHash } from '../src/nix/store-path.ts'
import { requireWrite } from '../src/plugins/access.ts'

const UPLOADED_LISTING_LIMIT = 64 * 1024 * 1024

/** `<store path hash>.ls`: the JSON listing of a store path. */
export default async function listingRoutes(fastify: FastifyInstance): Promise<void> {
  // `nix copy --to '…?write-nar-listing=true'` uploads listings; they are made from the tree instead.
  fastify.removeAllContentTypeParsers()
  fastify.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: UPLOADED_LISTING_LIMIT }, (_request, _body, done) => done(null))

  fastify.get<{ Params: { hash: string } }>('/:hash.ls', async (request, reply) => {
    const listing = await fastify.cache.listing(request.params.hash)
    if (listing === undefined) {
      return sendNotFound(reply, 'no such path')
    }
    reply.header('cache-control', `public, max-age=${fastify.settings.narinfoMaxAge}`)
    return sendText(request, reply, 'application/json', JSON.stringify(listing))
  })

  fastify.put<{ Params: { hash: string } }>('/:hash.ls', { preHandler: requireWrite, bodyLimit: UPLOADED_LISTING_LIMIT }, async (request, reply) => {
    if (!isStorePathHash(request.params.hash)) throw new NixcasError('BAD_REQUEST', `${JSON.stringify(request.params.hash)} is not a store path hash`)
    return reply.code(204).header('cache-control', 'no-store').send()
  })
}

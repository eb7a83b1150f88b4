import { request, type ClientRequest } from 'node:http'
import { setImmediate as tick } from 'node:timers/promises'
import t from 'tap'
import { PATH_HASH } from '../helpers/nar-samples.ts'
import { listen } from './server.ts'

const MiB = 1024 * 1024

/** A PUT whose body is sent in pieces, chunked (no declared length), finished by the test. */
function slowPut(url: string): { req: ClientRequest; status: Promise<number> } {
  const req = request(url, { method: 'PUT', headers: { 'content-type': 'text/x-nix-narinfo' } })
  const status = new Promise<number>((resolve, reject) => {
    req.on('response', (response) => {
      response.resume()
      resolve(response.statusCode ?? 0)
    })
    req.on('error', reject)
  })
  req.write('StorePath: /nix/store/')
  return { req, status }
}

/** Waits (by turns of the event loop, up to a generous bound) until `condition` holds. */
async function until(condition: () => boolean, what: string): Promise<void> {
  for (let turn = 0; turn < 2_000_000 && !condition(); turn++) await tick()
  if (!condition()) throw new Error(`never: ${what}`)
}

t.test('small bodies read whole wait for room in the shared upload budget, and give it back', async (t) => {
  const { options, url } = await listen(t, { totalUploadBytes: 2 * MiB })
  const budget = options.uploadBudget
  const uploads = [1, 2, 3].map(() => slowPut(`${url}/${PATH_HASH}.narinfo`))
  // Two narinfo bodies of unknown length take the 1 MiB limit each; the third waits unread.
  await until(() => budget.inUse === 2 * MiB, 'two uploads hold room')
  t.equal(budget.peak, 2 * MiB, 'never more than the budget')
  for (const { req } of uploads) req.end('not a narinfo\n')
  t.same(await Promise.all(uploads.map(({ status }) => status)), [400, 400, 400], 'each is read once there is room, and refused as the garbage it is')
  t.equal(budget.inUse, 0, 'all room given back')
  t.equal(budget.peak, 2 * MiB, 'still never more than the budget')

  const declared = await fetch(`${url}/${PATH_HASH}.narinfo`, { method: 'PUT', body: 'x'.repeat(1000) })
  t.equal(declared.status, 400)
  t.equal(budget.peak, 2 * MiB)
  t.equal(budget.inUse, 0)
})

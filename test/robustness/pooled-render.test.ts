import { randomBytes } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { request } from 'node:http'
import { join } from 'node:path'
import t from 'tap'
import { narOf } from '../helpers/nar-samples.ts'
import { tempDir } from '../helpers/trees.ts'
import { listen } from './server.ts'

const MiB = 1024 * 1024

/** GETs `url`; with `leaveAfter`, destroys the connection once that many body bytes came. */
function download(url: string, leaveAfter?: number): Promise<Buffer | 'left'> {
  return new Promise((resolve, reject) => {
    const req = request(url, (response) => {
      const parts: Buffer[] = []
      let received = 0
      response.on('data', (part: Buffer) => {
        parts.push(part)
        received += part.length
        if (leaveAfter !== undefined && received >= leaveAfter) {
          req.destroy()
          resolve('left')
        }
      })
      response.on('end', () => resolve(Buffer.concat(parts)))
      response.on('error', () => resolve('left'))
    })
    req.on('error', (error) => (leaveAfter === undefined ? reject(error) : resolve('left')))
    req.end()
  })
}

/**
 * NAR responses from a local disk are views of pooled buffers, shared between a read and the
 * pieces on their way to sockets, and given back as each is written. A buffer given back
 * too early would be reused for another read while a socket still sends it: the bytes of
 * some download would change. Clients that leave at every point exercise the give-backs on
 * every path (written, destroyed mid-write, never written).
 */
t.test('downloads whose clients leave at any point never corrupt the downloads that go on', async (t) => {
  const dir = await tempDir(t)
  const tree = join(dir, 'tree')
  await mkdir(join(tree, 'small'), { recursive: true })
  // Large files (chunks of up to a MiB, read in parts) and many small ones (copied into blocks), some repeated.
  for (let index = 0; index < 6; index++) await writeFile(join(tree, `large-${index}`), randomBytes(700_000 + index * 300_000))
  const repeated = randomBytes(40_000)
  for (let index = 0; index < 300; index++) await writeFile(join(tree, 'small', `f${index}`), index % 7 === 0 ? repeated : randomBytes(100 + index * 37))
  const nar = await narOf(tree)
  const server = await listen(t, { stores: { stores: { disk: { type: 'fs', path: join(dir, 'store'), fsync: false } }, root: 'disk' }, totalWindowBytes: 16 * MiB })
  const put = await fetch(`${server.url}/nar/${nar.hash}.nar`, { method: 'PUT', body: nar.bytes })
  t.equal(put.status, 201)
  const url = `${server.url}/nar/${nar.hash}.nar`
  for (let round = 0; round < 4; round++) {
    const leaving = Array.from({ length: 12 }, () => download(url, Math.floor(Math.random() * nar.bytes.length)))
    const staying = Array.from({ length: 6 }, () => download(url))
    const results = await Promise.all([...staying, ...leaving])
    const whole = results.slice(0, staying.length)
    t.ok(whole.every((body) => body !== 'left' && body.equals(nar.bytes)), `round ${round}: every download that stayed is the NAR`)
  }
  const last = await download(url)
  t.ok(last !== 'left' && last.equals(nar.bytes), 'and one more after all of them')
})

import { execFileSync } from 'node:child_process'
import { connect } from 'node:net'
import t from 'tap'
import { MAGIC_BYTES, fileHeader, fileTrailer } from '../../src/nix/nar-format.ts'
import { skipWithout } from '../codec/tools.ts'
import { listen } from './server.ts'

const MiB = 1024 * 1024
const PIECE = 256 * MiB
const PIECES = 128

const xz = (input: Uint8Array): Buffer => execFileSync('xz', ['-c', '-0', '-T1'], { input, maxBuffer: 64 * MiB })

/**
 * A 32 GiB NAR (one file of zeros) in about 5 MB: concatenated xz streams, the middle one
 * (256 MiB of zeros) repeated. Decoding it takes minutes; sending it, milliseconds.
 */
function bomb(): Buffer {
  const size = PIECE * PIECES
  const zeros = xz(Buffer.alloc(PIECE))
  return Buffer.concat([xz(Buffer.concat([MAGIC_BYTES, fileHeader(false, size)])), ...Array.from({ length: PIECES }, () => zeros), xz(fileTrailer(size))])
}

async function refusedUploads(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text()
  return Number(/^nixcas_ingested_nars_total\{outcome="refused"\} (\d+)/m.exec(text)?.[1] ?? 0)
}

t.test('a client that sends a whole compression bomb and leaves: the upload stops, it is not decoded for nobody', { skip: skipWithout('xz') }, async (t) => {
  const server = await listen(t)
  const body = bomb()
  const { port } = new URL(server.url)
  const socket = connect(Number(port), '127.0.0.1')
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject))
  socket.on('error', () => undefined)
  const head = `PUT /nar/gone.nar.xz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${body.length}\r\n\r\n`
  await new Promise<void>((resolve, reject) => socket.write(Buffer.concat([Buffer.from(head), body]), (error) => (error ? reject(error) : resolve())))
  socket.end()
  socket.destroy()
  // Decoding all of it would take minutes; the server must notice within seconds (the bound is generous, not a timing).
  const deadline = Date.now() + 60_000
  while ((await refusedUploads(server.url)) === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100))
  t.equal(await refusedUploads(server.url), 1, 'the upload ended as refused (its client went away)')
  t.equal((await fetch(`${server.url}/health`)).status, 200, 'the server is well')
})

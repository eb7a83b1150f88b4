import { connect } from 'node:net'
import t from 'tap'
import { listen } from './server.ts'

/**
 * Sends a request's head and the first bytes of a body that declares more, then nothing,
 * and resolves with the status line of the answer (or "closed" if the server hung up).
 */
async function stalledUpload(url: string, path: string, declared: number, sent: Buffer, signal?: AbortSignal): Promise<string> {
  const { port } = new URL(url)
  const socket = connect(Number(port), '127.0.0.1')
  signal?.addEventListener('abort', () => socket.destroy(), { once: true })
  socket.on('error', () => undefined)
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject))
  socket.write(`PUT ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${declared}\r\n\r\n`)
  socket.write(sent)
  let answer = ''
  return new Promise<string>((resolve) => {
    socket.on('data', (bytes: Buffer) => {
      answer += bytes.toString('latin1')
      const end = answer.indexOf('\r\n')
      if (end >= 0) {
        socket.destroy()
        resolve(answer.slice(0, end))
      }
    })
    socket.once('close', () => resolve(answer === '' ? 'closed' : answer))
  })
}

t.test('an upload whose body stops arriving is answered 408, on NAR and narinfo PUTs alike', async (t) => {
  const server = await listen(t, { uploadIdleTimeout: 1 })
  t.match(await stalledUpload(server.url, '/nar/stalled.nar', 1_000_000, Buffer.from('nix-archive-1')), /^HTTP\/1\.1 408 /, 'a NAR whose body stops midway')
  t.match(await stalledUpload(server.url, `/${'0'.repeat(32)}.narinfo`, 500, Buffer.alloc(0)), /^HTTP\/1\.1 408 /, 'a narinfo that declares a body and sends none (a retried PUT)')
  const health = await fetch(`${server.url}/health`)
  t.equal(health.status, 200, 'the server serves on')
})

t.test('with uploadIdleTimeout 0 a stalled upload is waited for', async (t) => {
  const server = await listen(t, { uploadIdleTimeout: 0 })
  const client = new AbortController()
  const answer = stalledUpload(server.url, '/nar/stalled.nar', 1_000_000, Buffer.from('nix-archive-1'), client.signal)
  // Two seconds is twice the timeout above: the answer must still be pending.
  const pending = await Promise.race([answer, new Promise<string>((resolve) => setTimeout(() => resolve('pending'), 2000))])
  t.equal(pending, 'pending')
  client.abort()
  t.equal(await answer, 'closed', 'the client hung up itself')
})

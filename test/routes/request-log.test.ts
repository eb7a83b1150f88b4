import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { writeFile } from 'node:fs/promises'
import { request as httpRequest, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { buildApp } from '../../src/app.ts'
import type { ServerConfig } from '../../src/config.ts'
import { appOptionsFrom } from '../../src/server.ts'
import { S3Store } from '../../src/stores/s3.ts'
import { testConfig } from '../helpers/app.ts'
import { captureLogger, type CapturedLog } from '../helpers/log.ts'
import { narOf, narinfoFor, PATH_HASH, type SampleNar } from '../helpers/nar-samples.ts'
import { startS3 } from '../helpers/s3.ts'
import { tempDir } from '../helpers/trees.ts'

type Test = Parameters<typeof tempDir>[0]

async function app(t: Test, log: CapturedLog, overrides: Partial<ServerConfig> = {}): Promise<FastifyInstance> {
  const options = await appOptionsFrom(await testConfig(overrides), log.logger)
  const instance = await buildApp(options, { loggerInstance: log.logger })
  t.teardown(() => instance.close())
  await instance.ready()
  return instance
}

/** A NAR too large to sit in socket buffers, so a client can leave while it is being sent. */
async function largeNar(t: Test): Promise<SampleNar> {
  const dir = await tempDir(t)
  await writeFile(join(dir, 'big'), randomBytes(24 * 2 ** 20))
  return narOf(join(dir, 'big'))
}

/** Waits (bounded) until the request to `url` has its line, then returns every line it has. */
async function linesOf(log: CapturedLog, url: string): Promise<Record<string, unknown>[]> {
  for (let waited = 0; waited < 30_000; waited += 20) {
    const line = log.lines().find((entry) => entry.url === url)
    if (line) return log.lines().filter((entry) => entry.reqId === line.reqId)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  throw new Error(`no log line for ${url}`)
}

const warnings = (log: CapturedLog): Record<string, unknown>[] => log.lines().filter((line) => (line.level as number) >= 40)

t.test('a client that leaves mid-download gets one line, with or without compression', async (t) => {
  const log = captureLogger()
  const server = await app(t, log)
  const nar = await largeNar(t)
  t.equal((await server.inject({ method: 'PUT', url: '/nar/big.nar', payload: nar.bytes })).statusCode, 201)
  await server.listen({ port: 0, host: '127.0.0.1' })
  const { port } = server.server.address() as AddressInfo

  for (const encoding of ['identity', 'gzip']) {
    const url = `/nar/${nar.hash}.nar?case=${encoding}`
    const client = httpRequest({ host: '127.0.0.1', port, path: url, headers: { 'accept-encoding': encoding } })
    client.on('error', () => undefined) // destroyed on purpose below
    client.end()
    const [response] = (await once(client, 'response')) as [IncomingMessage]
    t.equal(response.statusCode, 200, `${encoding}: the download started`)
    await once(response, 'data')
    client.destroy()
    const lines = await linesOf(log, url)
    t.equal(lines.length, 1, `${encoding}: one line`)
    t.match(lines[0], { level: 30, msg: 'request abandoned by the client', method: 'GET', status: 499 })
  }
  await server.close()
  t.same(warnings(log), [], 'no warning or error was logged')
  const requestLines = log.lines().filter((line) => line.reqId !== undefined)
  t.same(requestLines.map((line) => [line.method, line.status]), [['PUT', 201], ['GET', 499], ['GET', 499]], 'nothing else, even after the app closed')
})

t.test('a client that leaves mid-upload gets one line', async (t) => {
  const log = captureLogger()
  const server = await app(t, log)
  await server.listen({ port: 0, host: '127.0.0.1' })
  const { port } = server.server.address() as AddressInfo
  const nar = await largeNar(t)
  const url = '/nar/left.nar'
  const client = httpRequest({ host: '127.0.0.1', port, path: url, method: 'PUT', headers: { 'content-length': nar.bytes.length } })
  client.on('error', () => undefined) // destroyed on purpose below
  const received = once(server.server, 'request')
  client.write(nar.bytes.subarray(0, 4 * 2 ** 20))
  await received // the server has the request and part of its body is on the way
  client.destroy()
  const lines = await linesOf(log, url)
  await server.close()
  t.equal(lines.length, 1, 'one line')
  t.match(lines[0], { level: 30, msg: 'request abandoned by the client', method: 'PUT', status: 499 })
  t.same(warnings(log), [], 'no warning or error was logged')
})

t.test('corruption is one error line naming the store and key', async (t) => {
  const s3 = await startS3(t)
  const stores = { stores: { bucket: { type: 's3', ...s3.options } }, root: 'bucket' }
  const writer = await app(t, captureLogger(), { stores })
  const dir = await tempDir(t)
  await writeFile(join(dir, 'file'), randomBytes(2 * 2 ** 20))
  const nar = await narOf(join(dir, 'file'))
  t.equal((await writer.inject({ method: 'PUT', url: '/nar/file.nar', payload: nar.bytes })).statusCode, 201)
  t.equal((await writer.inject({ method: 'PUT', url: `/${PATH_HASH}.narinfo`, payload: narinfoFor(nar, PATH_HASH) })).statusCode, 204)

  // Flip a byte in the largest object (chunk data), and garble the path's record.
  const direct = new S3Store('direct', s3.options)
  t.teardown(() => direct.close())
  const objects: { key: string; size: number }[] = []
  for await (const object of direct.list('')) objects.push(object)
  const largest = objects.reduce((a, b) => (b.size > a.size ? b : a))
  const bytes = (await direct.get(largest.key)) as Buffer
  bytes.writeUInt8(bytes.readUInt8(bytes.length >> 1) ^ 0xff, bytes.length >> 1)
  await direct.put(largest.key, bytes)
  const info = objects.find((object) => object.key.startsWith('info/'))
  t.ok(info, 'the path has a record')
  await direct.put(info?.key ?? '', Buffer.from('not a record'))

  // A fresh app, so nothing is served from memory.
  const log = captureLogger()
  const reader = await app(t, log, { stores })
  const narUrl = `/nar/${nar.hash}.nar`
  const download = await reader.inject({ url: narUrl })
  t.not(download.statusCode === 200 && download.rawPayload.equals(nar.bytes), true, 'the corrupt bytes were not served whole')
  const narinfo = await reader.inject({ url: `/${PATH_HASH}.narinfo` })
  t.equal(narinfo.statusCode, 502)

  for (const [url, key] of [[narUrl, largest.key], [`/${PATH_HASH}.narinfo`, info?.key]] as const) {
    const lines = await linesOf(log, url)
    t.equal(lines.length, 1, `${url}: one line`)
    t.match(lines[0], { level: 50, msg: 'corrupt object', store: 'bucket', key, err: { message: String } }, `${url}: at error level, with the store and key`)
  }
})

/** Run inside a worker_threads Worker by worker.test.ts: every method, encoded then decoded. */
import { parentPort, workerData } from 'node:worker_threads'
import { decode } from '../../src/codec/decode.ts'
import { encode } from '../../src/codec/encode.ts'
import type { CodecMethod } from '../../src/codec/methods.ts'
import { collect } from '../helpers/streams.ts'
import { source } from './tools.ts'

const { data, methods } = workerData as { data: Uint8Array; methods: CodecMethod[] }
const results: Record<string, { compressed: Uint8Array; roundTrip: boolean }> = {}
for (const method of methods) {
  const compressed = await collect(encode(source(data), method))
  const back = await collect(decode(source(compressed, [777]), method))
  results[method] = { compressed, roundTrip: back.equals(data) }
}
parentPort?.postMessage(results)

import type { AddressInfo } from 'node:net'
import { createRequire } from 'node:module'
import { tempDir } from './trees.ts'

const require = createRequire(import.meta.url)

interface S3rverInstance {
  run(): Promise<AddressInfo>
  close(): Promise<void>
}
type S3rverClass = new (options: Record<string, unknown>) => S3rverInstance

export interface S3Server {
  endpoint: string
  bucket: string
  /** Store options for an S3Store pointing at this server. */
  options: { bucket: string; endpoint: string; region: string; forcePathStyle: boolean; accessKeyId: string; secretAccessKey: string }
}

/** A real S3 HTTP server (s3rver) on 127.0.0.1, one bucket, stopped when the test ends. */
export async function startS3(t: { teardown: (fn: () => Promise<void>) => void }, bucket = 'nixcas-test'): Promise<S3Server> {
  const S3rver = require('s3rver') as S3rverClass
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: await tempDir(t, 'nixcas-s3-'),
    configureBuckets: [{ name: bucket }],
  })
  const { port } = await server.run()
  t.teardown(() => server.close())
  const endpoint = `http://127.0.0.1:${port}`
  return {
    endpoint,
    bucket,
    options: { bucket, endpoint, region: 'us-east-1', forcePathStyle: true, accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  }
}

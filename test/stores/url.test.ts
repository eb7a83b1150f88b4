import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import t from 'tap'
import { composeStores } from '../../src/stores/compose.ts'
import { storeConfigFromUrl } from '../../src/stores/url.ts'
import { startGcs } from '../helpers/gcs.ts'
import { silentLogger } from '../helpers/log.ts'
import { startS3 } from '../helpers/s3.ts'
import { tempDir } from '../helpers/trees.ts'

t.test('every URL form becomes configuration', async (t) => {
  t.same(storeConfigFromUrl('memory://'), { stores: { 'memory://': { type: 'memory' } }, root: 'memory://' })
  t.same(storeConfigFromUrl('file:///var/lib/nixcas'), { stores: { 'file:///var/lib/nixcas': { type: 'fs', path: '/var/lib/nixcas' } }, root: 'file:///var/lib/nixcas' })
  t.same(storeConfigFromUrl('file:data').stores['file:data'], { type: 'fs', path: 'data' })
  t.same(storeConfigFromUrl('file://./data').stores['file://./data'], { type: 'fs', path: './data' })
  t.same(storeConfigFromUrl('./data').stores['./data'], { type: 'fs', path: './data' }, 'a bare path is an fs store')
  t.same(storeConfigFromUrl('s3://nix-cache/some/prefix?region=eu-west-1&endpoint=http://127.0.0.1:9000&forcePathStyle=true'), {
    stores: { 's3://nix-cache/some/prefix': { type: 's3', bucket: 'nix-cache', prefix: 'some/prefix/', region: 'eu-west-1', endpoint: 'http://127.0.0.1:9000', forcePathStyle: 'true' } },
    root: 's3://nix-cache/some/prefix',
  })
  t.same(storeConfigFromUrl('gs://nix-cache?project=p').stores['gs://nix-cache'], { type: 'gcs', bucket: 'nix-cache', project: 'p' })
  t.same(storeConfigFromUrl('s3://nix-cache/p/?retry=4&cache=file:///var/cache/nixcas'), {
    stores: {
      's3://nix-cache/p/': { type: 's3', bucket: 'nix-cache', prefix: 'p/' },
      'retry(s3://nix-cache/p/)': { type: 'retry', store: 's3://nix-cache/p/', attempts: '4' },
      'cache(retry(s3://nix-cache/p/))': { type: 'cache', near: 'file:///var/cache/nixcas', far: 'retry(s3://nix-cache/p/)' },
    },
    root: 'cache(retry(s3://nix-cache/p/))',
  })
})

t.test('bad URLs are refused with a message', async (t) => {
  const build = (url: string): unknown => composeStores({ stores: {}, root: url }, { logger: silentLogger })
  t.throws(() => build('ftp://host/x'), { code: 'BAD_CONFIG', message: /unknown scheme "ftp"/ })
  t.throws(() => build('s3://BAD_BUCKET/x'), { code: 'BAD_CONFIG', message: /not a bucket name/ })
  t.throws(() => build('s3://user:pw@bucket/x'), { code: 'BAD_CONFIG', message: /credentials/ })
  t.throws(() => build('s3://bucket?colour=red'), { code: 'BAD_CONFIG', message: /store "s3:\/\/bucket", field "colour": unknown option/ })
  t.throws(() => build('s3://bucket?retry=zero'), { code: 'BAD_CONFIG', message: /store "retry\(s3:\/\/bucket\)", field "attempts"/ })
  t.throws(() => build('s3://bucket?cache='), { code: 'BAD_CONFIG', message: /cache= needs/ })
  t.throws(() => build('file:'), { code: 'BAD_CONFIG', message: /no path/ })
  t.throws(() => build('memory://?cache=gopher://x'), { code: 'BAD_CONFIG', message: /unknown scheme "gopher"/ })
})

t.test('URLs build working stores through the same code path', async (t) => {
  const s3 = await startS3(t)
  const gcs = await startGcs(t)
  const dir = await tempDir(t)
  process.env.AWS_ACCESS_KEY_ID = 'S3RVER'
  process.env.AWS_SECRET_ACCESS_KEY = 'S3RVER'
  const urls = [
    'memory://',
    `file://${join(dir, 'abs')}`,
    `s3://${s3.bucket}/with/prefix?region=us-east-1&endpoint=${encodeURIComponent(s3.endpoint)}&forcePathStyle=true&retry=3&cache=${encodeURIComponent(`file://${join(dir, 'near')}`)}`,
    `gs://nixcas-test/prefix?project=${gcs.project}&apiEndpoint=${encodeURIComponent(gcs.apiEndpoint)}`,
  ]
  for (const url of urls) {
    const stack = composeStores({ stores: {}, root: url }, { logger: silentLogger })
    t.teardown(() => stack.close())
    const bytes = randomBytes(100)
    await stack.root.put('chunks/00/x', bytes)
    t.ok((await stack.root.get('chunks/00/x'))?.equals(bytes), `${url.split('?')[0]}: round trip`)
  }
  const cached = composeStores({ stores: {}, root: urls[2] as string }, { logger: silentLogger })
  t.teardown(() => cached.close())
  t.same([...cached.instances.keys()], [`file://${join(dir, 'near')}`, `s3://${s3.bucket}/with/prefix`, `retry(s3://${s3.bucket}/with/prefix)`, `cache(retry(s3://${s3.bucket}/with/prefix))`], 'derived names')
  t.ok(await cached.instances.get(`file://${join(dir, 'near')}`)?.get('chunks/00/x'), 'the near store of ?cache= holds the object')
})

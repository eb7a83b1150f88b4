import t from 'tap'
import { build } from '../helpers/app.ts'
import { narOf } from '../helpers/nar-samples.ts'
import { makeGoldenTrees, tempDir } from '../helpers/trees.ts'

const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`

t.test('anonymous writes only on a loopback-only server without credentials', async (t) => {
  const trees = await makeGoldenTrees(await tempDir(t))
  const nar = await narOf(trees['empty-file'] as string)
  const loopback = await build(t, { host: '127.0.0.1' })
  t.equal((await loopback.inject({ method: 'PUT', url: '/nar/a.nar', payload: nar.bytes })).statusCode, 201)
  const exposed = await build(t, { host: '0.0.0.0' })
  const refused = await exposed.inject({ method: 'PUT', url: '/nar/a.nar', payload: nar.bytes })
  t.equal(refused.statusCode, 403)
  t.match(refused.body, /no write credentials/)
  t.equal((await exposed.inject({ url: '/nix-cache-info' })).statusCode, 200, 'reads stay public')
})

t.test('write credentials: Bearer, Basic users, Basic with a token', async (t) => {
  const trees = await makeGoldenTrees(await tempDir(t))
  const nar = await narOf(trees['empty-file'] as string)
  const app = await build(t, { host: '0.0.0.0', auth: { writeTokens: ['s3cret-token'], writeUsers: { alice: 'wonderland' }, readTokens: [], readUsers: {} } })
  const put = (authorization?: string): Promise<number> =>
    app.inject({ method: 'PUT', url: '/nar/a.nar', payload: nar.bytes, headers: authorization ? { authorization } : {} }).then((response) => response.statusCode)
  const anonymous = await app.inject({ method: 'PUT', url: '/nar/a.nar', payload: nar.bytes })
  t.equal(anonymous.statusCode, 401)
  t.match(anonymous.headers['www-authenticate'], /^Basic realm="nixcas"/)
  t.equal(await put('Bearer s3cret-token'), 201)
  t.equal(await put(basic('alice', 'wonderland')), 201)
  t.equal(await put(basic('nix', 's3cret-token')), 201, 'netrc with the token as password')
  t.equal(await put('Bearer wrong'), 401)
  t.equal(await put(basic('alice', 'wrong')), 401)
  t.equal(await put(basic('bob', 'wonderland')), 401)
  t.equal(await put('Digest something'), 401)
  t.equal(await put('Basic !!!'), 401)
  t.equal((await app.inject({ method: 'PUT', url: '/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.narinfo', payload: 'x' })).statusCode, 401, 'narinfo PUT too')
})

t.test('read credentials close reads, but not /health', async (t) => {
  const app = await build(t, { auth: { writeTokens: ['w'], writeUsers: {}, readTokens: ['r'], readUsers: { reader: 'pw' } } })
  t.equal((await app.inject({ url: '/nix-cache-info' })).statusCode, 401)
  t.equal((await app.inject({ url: '/nix-cache-info', headers: { authorization: 'Bearer r' } })).statusCode, 200)
  t.equal((await app.inject({ url: '/nix-cache-info', headers: { authorization: basic('reader', 'pw') } })).statusCode, 200)
  t.equal((await app.inject({ url: '/nix-cache-info', headers: { authorization: 'Bearer w' } })).statusCode, 200, 'a writer may read')
  t.equal((await app.inject({ url: '/health' })).statusCode, 200)
})

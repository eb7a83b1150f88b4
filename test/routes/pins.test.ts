import t from 'tap'
import { build } from '../helpers/app.ts'
import { fetched } from '../helpers/push.ts'
import { gc, pushedPair } from '../lifecycle/scenario.ts'

const auth = { authorization: 'Bearer sesame' }

t.test('pins over HTTP: write credentials only, checked input, and what they pin survives gc', async (t) => {
  const { config, dep, top } = await pushedPair(t)
  const app = await build(t, { stores: config, auth: { writeTokens: ['sesame'], writeUsers: {}, readTokens: [], readUsers: {} } })

  t.equal((await app.inject({ url: '/pins' })).statusCode, 401, 'no credential, no pins')
  t.equal((await app.inject({ method: 'PUT', url: '/pins/release', payload: { paths: [top.storePath] } })).statusCode, 401)
  t.same((await app.inject({ url: '/pins', headers: auth })).json(), { pins: [] })

  const put = await app.inject({ method: 'PUT', url: '/pins/release', headers: auth, payload: { paths: [top.storePath, top.storePath] } })
  t.equal(put.statusCode, 200)
  t.same(put.json(), { name: 'release', paths: [top.storePath] })
  t.equal(put.headers['cache-control'], 'no-store')
  t.same((await app.inject({ url: '/pins/release', headers: auth })).json(), { name: 'release', paths: [top.storePath] })
  t.same((await app.inject({ url: '/pins', headers: auth })).json(), { pins: [{ name: 'release', paths: [top.storePath] }] })

  for (const [what, url, payload] of [
    ['a bad name', '/pins/..hidden', { paths: [] }],
    ['not a store path', '/pins/x', { paths: ['/etc/passwd'] }],
    ['paths that are not a list', '/pins/x', { paths: 'all' }],
    ['no paths', '/pins/x', {}],
  ] as const) {
    const response = await app.inject({ method: 'PUT', url, headers: auth, payload })
    t.equal(response.statusCode, 400, `${what}: 400 (${response.body.trim()})`)
  }
  const text = await app.inject({ method: 'PUT', url: '/pins/x', headers: { ...auth, 'content-type': 'text/plain' }, payload: 'paths' })
  t.equal(text.statusCode, 400, `a body that is not JSON: 400 (${text.body.trim()})`)
  t.equal((await app.inject({ url: '/pins/x', headers: auth })).statusCode, 404)

  const report = await gc(t, config)
  t.same(report.deletedPaths, [], 'the pin keeps top and its closure')
  t.equal(await fetched(app, dep), 'identical')

  t.equal((await app.inject({ method: 'DELETE', url: '/pins/release', headers: auth })).statusCode, 204)
  t.equal((await app.inject({ method: 'DELETE', url: '/pins/release', headers: auth })).statusCode, 404)
  t.same((await gc(t, config)).deletedPaths.sort(), [dep.storePath, top.storePath].sort(), 'unpinned, they go')
})

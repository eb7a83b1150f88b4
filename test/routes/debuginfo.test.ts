import t from 'tap'
import { build } from '../helpers/app.ts'

const BUILD_ID = `ab${'c'.repeat(38)}`
const url = `/debuginfo/${BUILD_ID}.debug`
// Byte for byte what Nix 2.8 uploads with index-debug-info=true.
const entry = `{"archive":"../nar/1ja0clfi4f87rvmh9jfwf55q0fzfnk6vn99anw018wmy4v9ccwnh.nar.xz","member":"lib/debug/.build-id/ab/${'c'.repeat(38)}.debug"}`

t.test('debuginfo entries: PUT as Nix writes them, GET and HEAD as dwarffs reads them', async (t) => {
  const app = await build(t)
  t.equal((await app.inject({ method: 'HEAD', url })).statusCode, 404, 'Nix asks first')
  const put = await app.inject({ method: 'PUT', url, payload: entry, headers: { 'content-type': 'application/json' } })
  t.equal(put.statusCode, 204, put.body)
  const get = await app.inject({ url })
  t.equal(get.statusCode, 200)
  t.equal(get.body, entry)
  t.match(get.headers['content-type'], /^application\/json/)
  const head = await app.inject({ method: 'HEAD', url })
  t.equal(head.statusCode, 200)
  t.equal(head.body, '')
  const spaced = await app.inject({ method: 'PUT', url, payload: JSON.stringify(JSON.parse(entry), null, 2) })
  t.equal(spaced.statusCode, 204, 'any JSON layout; stored as Nix writes it')
  t.equal((await app.inject({ url })).body, entry)
})

t.test('malformed entries and names are refused', async (t) => {
  const app = await build(t)
  const cases: [string, string, string, number][] = [
    ['not JSON', url, 'nope', 400],
    ['member of another build-id', url, entry.replace(`ab/${'c'.repeat(38)}`, `ab/${'d'.repeat(38)}`), 400],
    ['archive outside nar/', url, entry.replace('../nar/', '../../etc/'), 400],
    ['unknown field', url, entry.replace('{', '{"x":1,'), 400],
    ['name without .debug', `/debuginfo/${BUILD_ID}`, entry, 400],
    ['short build-id', '/debuginfo/abc.debug', entry, 400],
    ['too large', url, `{"archive":"${'x'.repeat(100_000)}"}`, 413],
  ]
  for (const [label, target, body, status] of cases) {
    const response = await app.inject({ method: 'PUT', url: target, payload: body })
    t.equal(response.statusCode, status, `${label}: ${response.body.trim().slice(0, 120)}`)
  }
  t.equal((await app.inject({ url })).statusCode, 404, 'nothing refused became visible')
  t.equal((await app.inject({ url: '/debuginfo/nonsense' })).statusCode, 400)
})

import t, { type Test } from 'tap'
import {
  boolean,
  custom,
  duration,
  fieldContext,
  fileList,
  integer,
  listenAddress,
  mappingOf,
  oneOf,
  size,
  string,
  stringList,
  userMap,
  type Kind,
  type Origin,
} from '../../src/config/kinds.ts'

const fromFile: Origin = { from: 'file', file: '/etc/nixcas.yaml' }
const parse = <T>(kind: Kind<T>, raw: unknown, origin: Origin = fromFile): T => kind.parse(raw, fieldContext('a.b', origin, '/etc/nixcas'))

/** Good values with what they parse to, bad values with a pattern of the message. */
function check<T>(t: Test, name: string, kind: Kind<T>, good: [unknown, T][], bad: [unknown, RegExp][]): void {
  t.test(name, async (t) => {
    for (const [raw, value] of good) t.same(parse(kind, raw), value, `${JSON.stringify(raw)} is good`)
    for (const [raw, message] of bad) {
      t.throws(() => parse(kind, raw), { code: 'BAD_CONFIG', message: /^configuration field "a\.b(\[\d+\]|\.\w+)*": / }, `${JSON.stringify(raw)} names the field`)
      t.throws(() => parse(kind, raw), { message }, `${JSON.stringify(raw)} is refused`)
    }
  })
}

check(t, 'integer', integer, [[0, 0], [42, 42], ['42', 42], [' 7 ', 7]], [['abc', /expected a whole number, got "abc"/], [-1, /got -1/], [1.5, /got 1\.5/], ['', /got ""/], [true, /got true/], [null, /got null/]])

check(
  t,
  'size',
  size,
  [[4096, 4096], ['4096', 4096], ['64MiB', 64 * 2 ** 20], ['1G', 2 ** 30], ['2 KB', 2000]],
  [['lots', /expected a size such as 64MiB, got "lots"/], [-5, /got -5/], ['64 MiBs', /got "64 MiBs"/], [[1], /got \[1\]/]],
)

check(
  t,
  'duration in seconds',
  duration('s'),
  [[3600, 3600], ['3600', 3600], ['1h', 3600], ['30d', 30 * 86_400], ['90s', 90], ['2000ms', 2]],
  [['abc', /expected a duration such as 90s or a number of seconds, got "abc"/], ['500ms', /expected a whole number of seconds, got "500ms"/], [-1, /got -1/], ['1y', /got "1y"/]],
)

check(t, 'duration in milliseconds', duration('ms'), [[250, 250], ['500ms', 500], ['2s', 2000], ['1m', 60_000]], [['soon', /number of milliseconds, got "soon"/], [0.5, /got 0\.5/]])

check(
  t,
  'boolean',
  boolean,
  [[true, true], [false, false], ['true', true], ['1', true], ['false', false], ['0', false]],
  [['maybe', /expected true or false, got "maybe"/], [1, /got 1/], ['yes', /got "yes"/]],
)

check(t, 'string', string, [['x', 'x'], [5, '5']], [['', /expected a non-empty string, got ""/], [['x'], /got \["x"\]/], [{}, /got \{\}/]])

check(t, 'enum', oneOf('info', 'warn'), [['info', 'info'], ['warn', 'warn']], [['loud', /expected one of info, warn, got "loud"/], ['INFO', /got "INFO"/]])

check(
  t,
  'string list',
  stringList,
  [[['a', 'b'], ['a', 'b']], ['a, b,,c', ['a', 'b', 'c']], ['', []], [[], []]],
  [[[1], /field "a\.b\[0\]": expected a non-empty string, got 1/], [['a', ''], /field "a\.b\[1\]"/], [{ a: 1 }, /expected a list of strings/], [3, /expected a list of strings/]],
)

check(
  t,
  'file list: relative to where the value was written',
  fileList,
  [[['k', '/abs/k', '../up'], ['/etc/nixcas/k', '/abs/k', '/etc/up']], ['a,b', ['/etc/nixcas/a', '/etc/nixcas/b']]],
  [[[''], /field "a\.b\[0\]"/], [7, /expected a list/]],
)

check(
  t,
  'user map',
  userMap,
  [[{ alice: 'pw' }, { alice: 'pw' }], ['alice:pw, bob:p:w', { alice: 'pw', bob: 'p:w' }], [{}, {}]],
  [['alice', /expected user:password pairs/], [':pw', /expected user:password pairs/], ['alice:', /expected user:password pairs/], [['a'], /expected a mapping/], [{ alice: 3 }, /field "a\.b\.alice": expected a non-empty password/]],
)

check(
  t,
  'listen address',
  listenAddress,
  [['0.0.0.0:8080', { host: '0.0.0.0', port: 8080 }], [':7000', { host: '127.0.0.1', port: 7000 }], ['7000', { host: '127.0.0.1', port: 7000 }], [7000, { host: '127.0.0.1', port: 7000 }], ['[::1]:9000', { host: '::1', port: 9000 }], ['localhost:1', { host: 'localhost', port: 1 }]],
  [['nowhere', /expected HOST:PORT, got "nowhere"/], ['127.0.0.1:99999', /got "127\.0\.0\.1:99999"/], ['a:b:1', /expected HOST:PORT/], [true, /expected HOST:PORT/]],
)

interface Upstream {
  url: string
  priority: number
}
const upstreams = custom<Upstream[]>({
  describe: 'list of upstreams',
  parse(raw, field) {
    if (!Array.isArray(raw)) return field.fail('expected a list')
    return raw.map((item, index) => {
      const at = field.at(`[${index}]`)
      const fields = mappingOf(item, at, ['url', 'priority'])
      return { url: string.parse(fields.url, at.at('.url')), priority: integer.parse(fields.priority ?? 50, at.at('.priority')) }
    })
  },
  format: (value) => value.map((upstream) => upstream.url).join(', '),
})

check(
  t,
  'custom, with unknown fields refused inside',
  upstreams,
  [[[{ url: 'https://a' }, { url: 'https://b', priority: 10 }], [{ url: 'https://a', priority: 50 }, { url: 'https://b', priority: 10 }]]],
  [[{}, /expected a list/], [[{ url: 'x', colour: 'red' }], /field "a\.b\[0\]\.colour": unknown field; known: url, priority/], [[{ url: 'x' }, { url: '' }], /field "a\.b\[1\]\.url": expected a non-empty string/], [['x'], /field "a\.b\[0\]": expected a mapping/]],
)

t.test('an error says where the value came from', async (t) => {
  t.throws(() => parse(integer, 'x', { from: 'env', name: 'NIXCAS_X' }), { message: /got "x" \(from NIXCAS_X\)$/ })
  t.throws(() => parse(integer, 'x', { from: 'flag', name: '--x' }), { message: /\(from --x\)$/ })
  t.throws(() => parse(integer, 'x'), { message: /\(in \/etc\/nixcas\.yaml\)$/ })
})

t.test('format is the inverse of parse', async (t) => {
  const samples: [Kind<never>, unknown][] = [
    [size as Kind<never>, 64 * 2 ** 20],
    [size as Kind<never>, 1000],
    [duration('s') as Kind<never>, 5400],
    [duration('ms') as Kind<never>, 1500],
    [integer as Kind<never>, 12],
    [boolean as Kind<never>, false],
    [listenAddress as Kind<never>, { host: '::1', port: 80 }],
    [listenAddress as Kind<never>, { host: '0.0.0.0', port: 80 }],
    [stringList as Kind<never>, ['a', 'b']],
    [userMap as Kind<never>, { alice: 'pw' }],
  ]
  for (const [kind, value] of samples) t.same(parse(kind, kind.format(value as never)), value, `${kind.describe}: ${JSON.stringify(value)}`)
  t.equal(userMap.redact?.({ alice: 'secret' }), 'alice:***')
  t.equal(stringList.redact?.(['secret', 'other']), '(2 redacted)')
})

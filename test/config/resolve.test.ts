import t from 'tap'
import { custom, duration, fieldContext, fileList, integer, mappingOf, string } from '../../src/config/kinds.ts'
import { resolveSettings, type Sources } from '../../src/config/resolve.ts'
import { flagProperty, leaves, setting, Setting } from '../../src/config/setting.ts'
import { settings } from '../../src/config/settings.ts'

/** A table of its own, so the machinery is tested apart from today's settings. */
const tree = {
  port: setting({ kind: integer, default: 1, max: 9, env: 'NIXCAS_T_PORT', flag: '--port <n>', doc: 'a number' }),
  name: setting({ kind: string, required: true, env: 'NIXCAS_T_NAME', doc: 'required' }),
  files: setting({ kind: fileList, default: [], env: 'NIXCAS_T_FILES', flag: '--file <f>', doc: 'files' }),
  gc: {
    interval: setting({ kind: duration('s'), default: 3600, min: 60, env: 'NIXCAS_T_GC_INTERVAL', doc: 'a duration' }),
    deep: { level: setting({ kind: integer, doc: 'no default' }) },
  },
  upstreams: setting({
    kind: custom<{ url: string }[]>({
      describe: 'list of upstreams',
      parse: (raw, field) => {
        if (!Array.isArray(raw)) return field.fail('expected a list')
        return raw.map((item, index) => ({ url: string.parse(mappingOf(item, field.at(`[${index}]`), ['url']).url, field.at(`[${index}].url`)) }))
      },
      format: (value) => value.map(({ url }) => url).join(', '),
    }),
    default: [],
    env: 'NIXCAS_T_UPSTREAMS',
    doc: 'structured',
  }),
}

const sources = (document: Record<string, unknown>, env: Sources['env'] = {}, flags: Sources['flags'] = {}): Sources => ({
  document,
  file: '/etc/t.yaml',
  fileDir: '/etc',
  workDir: '/work',
  env,
  flags,
})

t.test('defaults < file < environment < flags, per setting, with origins', async (t) => {
  const document = { port: 2, name: 'n', files: ['a'], gc: { interval: '2h' } }
  const fromFile = resolveSettings(tree, sources(document))
  t.same(fromFile.values, { port: 2, name: 'n', files: ['/etc/a'], gc: { interval: 7200, deep: { level: undefined } }, upstreams: [] })
  t.same(fromFile.origins.get('port'), { from: 'file', file: '/etc/t.yaml' })
  t.same(fromFile.origins.get('upstreams'), { from: 'default' })

  const fromEnv = resolveSettings(tree, sources(document, { NIXCAS_T_PORT: '3', NIXCAS_T_FILES: 'b,c', NIXCAS_T_GC_INTERVAL: '90s' }))
  t.match(fromEnv.values, { port: 3, name: 'n', files: ['/work/b', '/work/c'], gc: { interval: 90 } })
  t.same(fromEnv.origins.get('gc.interval'), { from: 'env', name: 'NIXCAS_T_GC_INTERVAL' })

  const fromFlags = resolveSettings(tree, sources(document, { NIXCAS_T_PORT: '3' }, { port: '4', file: ['d', '/e'] }))
  t.match(fromFlags.values, { port: 4, files: ['/work/d', '/e'] })
  t.same(fromFlags.origins.get('files'), { from: 'flag', name: '--file' })
  t.match(resolveSettings(tree, sources(document, {}, { file: [] })).values, { files: ['/etc/a'] }, 'a repeatable flag never given does not count')
})

t.test('structured settings: a list of objects from the file, YAML from the environment', async (t) => {
  const document = { name: 'n', upstreams: [{ url: 'https://a' }] }
  t.same(resolveSettings(tree, sources(document)).values.upstreams, [{ url: 'https://a' }])
  t.same(resolveSettings(tree, sources(document, { NIXCAS_T_UPSTREAMS: '[{url: https://b}]' })).values.upstreams, [{ url: 'https://b' }])
  t.throws(() => resolveSettings(tree, sources({ name: 'n', upstreams: [{ url: 'x', weight: 2 }] })), { message: /^configuration field "upstreams\[0\]\.weight": unknown field/ })
  t.throws(() => resolveSettings(tree, sources(document, { NIXCAS_T_UPSTREAMS: '[{url: ' })), { message: /^configuration field "upstreams": not YAML: .*\(from NIXCAS_T_UPSTREAMS\)$/s })
})

t.test('unknown fields are refused at every level, with their full path', async (t) => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ name: 'n', colour: 'red' }, /^configuration field "colour": unknown field in \/etc\/t\.yaml; known here: port, name, files, gc, upstreams$/],
    [{ name: 'n', gc: { intervall: '1h' } }, /^configuration field "gc\.intervall": unknown field in \/etc\/t\.yaml; known here: interval, deep$/],
    [{ name: 'n', gc: { deep: { level: 1, depth: 2 } } }, /^configuration field "gc\.deep\.depth": unknown field/],
    [{ name: 'n', gc: 'often' }, /^configuration field "gc": expected a mapping of interval, deep, got "often"$/],
    [{ name: 'n', gc: { deep: [1] } }, /^configuration field "gc\.deep": expected a mapping/],
    [{ name: 'n', toString: 1 }, /field "toString": unknown field/],
  ]
  for (const [document, message] of cases) t.throws(() => resolveSettings(tree, sources(document)), { code: 'BAD_CONFIG', message }, JSON.stringify(document))
})

t.test('bounds, required settings and empty YAML values', async (t) => {
  t.throws(() => resolveSettings(tree, sources({ name: 'n', port: 10 })), { message: /field "port": must be at most 9, got 10 \(in \/etc\/t\.yaml\)/ })
  t.throws(() => resolveSettings(tree, sources({ name: 'n' }, { NIXCAS_T_GC_INTERVAL: '59s' })), { message: /field "gc\.interval": must be at least 1m, got 59s \(from NIXCAS_T_GC_INTERVAL\)/ })
  t.throws(() => resolveSettings(tree, sources({})), { message: /^configuration field "name": is required in \/etc\/t\.yaml$/ })
  t.equal(resolveSettings(tree, sources({}, { NIXCAS_T_NAME: 'from env' })).values.name, 'from env')
  const empty = resolveSettings(tree, sources({ name: 'n', files: null, gc: null }))
  t.same(empty.values.files, [], '`files:` with nothing after it is not set')
  t.equal(empty.values.gc.interval, 3600)
})

t.test('mistakes in a declaration are caught when the table loads', async (t) => {
  t.throws(() => setting({ kind: string, min: 1, doc: 'x' }), /min and max need a numeric kind/)
  t.throws(() => setting({ kind: integer, flag: '--Bad <n>', doc: 'x' }), /must look like --name <value>/)
  t.equal(flagProperty('--signing-key <file>'), 'signingKey')
})

t.test('the settings table itself', async (t) => {
  const all = leaves(settings)
  const envs = all.flatMap(({ setting }) => setting.declaration.env ?? [])
  const flags = all.flatMap(({ setting }) => setting.declaration.flag ?? []).map(flagProperty)
  t.equal(new Set(envs).size, envs.length, 'environment variables are distinct')
  t.equal(new Set(flags).size, flags.length, 'flags are distinct')
  t.notOk(envs.includes('NIXCAS_CONFIG'), 'NIXCAS_CONFIG picks the file; it is no setting')
  t.notOk(flags.includes('config'))
  for (const { path, setting } of all) {
    t.ok(setting instanceof Setting && setting.declaration.doc.length > 0, `${path} is documented`)
    const { kind, default: value, min, max } = setting.declaration
    if (value === undefined) continue
    // Every default is a value the setting itself accepts, written the way config check prints it.
    const field = fieldContext(path, { from: 'default' }, '/')
    t.same(kind.parse(kind.yamlText ? value : kind.format(value), field), value, `${path}: the default reads back`)
    if (typeof value === 'number') t.ok((min === undefined || value >= min) && (max === undefined || value <= max), `${path}: the default is in bounds`)
  }
})

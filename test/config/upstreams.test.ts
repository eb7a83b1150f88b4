import t from 'tap'
import { resolveSettings, type Sources } from '../../src/config/resolve.ts'
import { settings } from '../../src/config/settings.ts'
import { formatPublicKey, generateSecretKey } from '../../src/nix/signing.ts'

const KEY = formatPublicKey(generateSecretKey('upstream-1').publicKey)
const OTHER = formatPublicKey(generateSecretKey('upstream-2').publicKey)

const sources = (document: Record<string, unknown>, env: Sources['env'] = {}, flags: Sources['flags'] = {}): Sources => ({
  document: { root: 'memory://', ...document },
  file: '/etc/nixcas.yaml',
  fileDir: '/etc',
  workDir: '/work',
  env,
  flags,
})
const resolve = (...args: Parameters<typeof sources>) => resolveSettings(settings, sources(...args)).values

t.test('upstreams from the file, with defaults filled in and URLs normalised', async (t) => {
  const values = resolve({
    upstreams: [{ url: 'https://cache.example.org', publicKeys: [KEY] }, { url: 'http://10.0.0.1:8080/nix/', priority: 10, timeout: '2s', allowUnsigned: true, attempts: 5, backoff: '1s' }],
  })
  t.same(values.upstreams, [
    { url: 'https://cache.example.org/', publicKeys: [KEY], priority: 50, timeout: 5000, allowUnsigned: false, attempts: 3, backoff: 100 },
    { url: 'http://10.0.0.1:8080/nix/', publicKeys: [], priority: 10, timeout: 2000, allowUnsigned: true, attempts: 5, backoff: 1000 },
  ])
})

t.test('--upstream URL and --upstream-key NAME:BASE64, repeatable', async (t) => {
  const values = resolve({}, {}, { upstream: ['https://a.example', 'https://b.example/cache'], upstreamKey: [KEY, OTHER] })
  t.same(values.upstreams.map((upstream) => upstream.url), ['https://a.example/', 'https://b.example/cache/'])
  t.same(values.upstreamKeys, [KEY, OTHER])
})

t.test('NIXCAS_UPSTREAMS is YAML: one URL or a list', async (t) => {
  t.same(resolve({}, { NIXCAS_UPSTREAMS: 'https://a.example' }).upstreams.map((upstream) => upstream.url), ['https://a.example/'])
  t.same(resolve({}, { NIXCAS_UPSTREAMS: `[{url: "https://b.example", publicKeys: ["${KEY}"]}]` }).upstreams[0]?.publicKeys, [KEY])
  t.same(resolve({}, { NIXCAS_UPSTREAM_KEYS: `${KEY},${OTHER}` }).upstreamKeys, [KEY, OTHER])
})

t.test('bad values fail at start-up naming the field', async (t) => {
  const bad: [Record<string, unknown>, Sources['flags'], RegExp][] = [
    [{ upstreams: [{ url: 'ftp://x.example' }] }, {}, /field "upstreams\[0\]\.url": expected an http:\/\/ or https:\/\/ URL, got "ftp:\/\/x\.example" \(in \/etc\/nixcas\.yaml\)/],
    [{ upstreams: [{ url: 'not a url' }] }, {}, /field "upstreams\[0\]\.url": not a URL/],
    [{ upstreams: [{ url: 'https://a.example?x=1' }] }, {}, /field "upstreams\[0\]\.url": a query or fragment/],
    [{ upstreams: [{ url: 'https://u:p@a.example' }] }, {}, /field "upstreams\[0\]\.url": credentials/],
    [{ upstreams: [{ url: 'https://a.example', publicKeys: [KEY, 'nocolon'] }] }, {}, /field "upstreams\[0\]\.publicKeys\[1\]": public key must look like <name>:<base64>/],
    [{ upstreams: [{ url: 'https://a.example', publicKeys: ['k:AAAA'] }] }, {}, /field "upstreams\[0\]\.publicKeys\[0\]": public key "k" must hold 32 bytes/],
    [{ upstreams: [{ url: 'https://a.example', timeout: 0 }] }, {}, /field "upstreams\[0\]\.timeout": must be more than 0/],
    [{ upstreams: [{ url: 'https://a.example', attempts: 0 }] }, {}, /field "upstreams\[0\]\.attempts": must be more than 0/],
    [{ upstreams: [{ url: 'https://a.example', backoff: 'soon' }] }, {}, /field "upstreams\[0\]\.backoff"/],
    [{ upstreams: [{ url: 'https://a.example', colour: 'red' }] }, {}, /field "upstreams\[0\]\.colour": unknown field/],
    [{ upstreams: { url: 'https://a.example' } }, {}, /field "upstreams": expected a list of upstreams/],
    [{}, { upstream: ['https://ok.example', 'gopher://x'] }, /field "upstreams\[1\]\.url": expected an http.*\(from --upstream\)/],
    [{}, { upstreamKey: ['bad:!!'] }, /field "upstreamKeys\[0\]": public key "bad" is not base64 \(from --upstream-key\)/],
  ]
  for (const [document, flags, message] of bad) t.throws(() => resolve(document, {}, flags), { code: 'BAD_CONFIG', message }, JSON.stringify({ document, flags }))
})

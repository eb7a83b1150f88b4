import t from 'tap'
import {
  buildTraceFingerprint,
  parseBuildTraceEntry,
  renderBuildTraceEntry,
  renderBuildTraceValue,
  signBuildTraceEntry,
  validBuildTraceSignatures,
  type BuildTraceEntry,
} from '../../src/nix/build-trace.ts'
import { parseBuildTraceName } from '../../src/nix/drv-output.ts'
import { generateSecretKey, parseSecretKey, signFingerprint } from '../../src/nix/signing.ts'

// Test vectors from Nix's own unit tests (libstore-tests, data/realisation): its test key,
// the fingerprints it computes and the signatures it makes with that key (ed25519 is
// deterministic, so ours must come out byte for byte the same).
const NIX_TEST_KEY = parseSecretKey('test-key:tU7tTvLcScf8pmz/eTV0BEtLmRsPpZfKaRcd0nCN+pysBZPHSeg61/u2oc7mIOewfuAY1V1BiX32homTaDJ2Jw==')
const KEY = { drvPath: 'g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-bar.drv', outputName: 'foo' }
const GOLDEN: { label: string; entry: BuildTraceEntry; fingerprint: string; sig: string }[] = [
  {
    label: 'simple',
    entry: { key: KEY, outPath: 'g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-foo', signatures: [] },
    fingerprint: '{"key":{"drvPath":"g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-bar.drv","outputName":"foo"},"value":{"outPath":"g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-foo"}}',
    sig: 'WsjxK4/EI74COtzMDI+VCjQU9O4FydK0+YeY1CE5hUevogd+T+CPvNXza7oog3GTMS+ZlBwsC2S3ppwusKnJDg==',
  },
  {
    label: 'with-signature',
    entry: { key: KEY, outPath: 'g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-foo.drv', signatures: [`asdf:${Buffer.alloc(64).toString('base64')}`] },
    fingerprint: '{"key":{"drvPath":"g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-bar.drv","outputName":"foo"},"value":{"outPath":"g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-foo.drv"}}',
    sig: 'ZE30UrOh26/EYvUaczjJtz6c4WcRYke6IEhDNN5TiFRF6Uu+H8lHofponlhfZxDDrCUlfstS/vtv3Xm2F6M/AA==',
  },
]

const DRV = 'g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-bar.drv'
const OUT = 'g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-bar-foo'
const ZERO_SIG = Buffer.alloc(64).toString('base64')

t.test("fingerprints and signatures match Nix's own test vectors", async (t) => {
  for (const { label, entry, fingerprint, sig } of GOLDEN) {
    t.equal(buildTraceFingerprint(entry), fingerprint, `${label}: fingerprint`)
    t.equal(signFingerprint(NIX_TEST_KEY, fingerprint), `test-key:${sig}`, `${label}: our signature is Nix's`)
    const signed = signBuildTraceEntry(entry, [NIX_TEST_KEY])
    t.same(validBuildTraceSignatures(signed, [NIX_TEST_KEY.publicKey]), [`test-key:${sig}`], `${label}: verifies`)
    t.same(validBuildTraceSignatures({ ...signed, outPath: 'g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-bar' }, [NIX_TEST_KEY.publicKey]), [], `${label}: a changed outPath does not`)
    t.same(validBuildTraceSignatures({ ...signed, key: { ...KEY, outputName: 'out' } }, [NIX_TEST_KEY.publicKey]), [], `${label}: the key is covered`)
  }
})

t.test("Nix's golden JSON forms parse: value only (what caches hold) and keyed", async (t) => {
  const key = parseBuildTraceName(`${DRV}/foo.doi`)
  // unkeyed-with-signature.json, with an outPath named as output foo of bar.drv must be.
  const unkeyed = `{\n  "outPath": "${OUT}",\n  "signatures": [\n    {\n      "keyName": "asdf",\n      "sig": "${ZERO_SIG}"\n    }\n  ]\n}\n`
  const entry = parseBuildTraceEntry(unkeyed, key)
  t.same(entry, { key, outPath: OUT, signatures: [`asdf:${ZERO_SIG}`] })
  t.equal(renderBuildTraceValue(entry), JSON.stringify(JSON.parse(unkeyed)), 'renders as Nix dumps it')
  // with-signature-unstructured.json: keyed, signatures as strings.
  const keyed = `{"key":{"drvPath":"${DRV}","outputName":"foo"},"value":{"outPath":"${OUT}","signatures":["asdf:${ZERO_SIG}"]}}`
  t.same(parseBuildTraceEntry(keyed, key), entry)
  t.equal(renderBuildTraceEntry(entry), `{"key":{"drvPath":"${DRV}","outputName":"foo"},"value":{"outPath":"${OUT}","signatures":[{"keyName":"asdf","sig":"${ZERO_SIG}"}]}}`)
  // unkeyed-simple.json
  const simple = parseBuildTraceEntry(`{\n  "outPath": "g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-foo",\n  "signatures": []\n}\n`, { drvPath: 'g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-foo.drv', outputName: 'out' })
  t.equal(renderBuildTraceValue(simple), '{"outPath":"g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-foo","signatures":[]}')
  t.same(parseBuildTraceEntry(`{"outPath":"${OUT}"}`, key).signatures, [], 'signatures may be absent, as Nix reads it')
  t.same(parseBuildTraceEntry(`{"outPath":"${OUT}","dependentRealisations":{}}`, key).outPath, OUT, 'the back-compat empty dependentRealisations is tolerated')
})

t.test('signing round trip through the rendered value', async (t) => {
  const key = parseBuildTraceName(`${DRV}/foo.doi`)
  const a = generateSecretKey('nixcas-a-1')
  const b = generateSecretKey('nixcas-b-1')
  const signed = signBuildTraceEntry(signBuildTraceEntry({ key, outPath: OUT, signatures: [`asdf:${ZERO_SIG}`] }, [b, a]), [a])
  t.equal(signed.signatures.length, 3)
  const again = parseBuildTraceEntry(renderBuildTraceValue(signed), key)
  t.equal(validBuildTraceSignatures(again, [a.publicKey, b.publicKey]).length, 2)
  const order = (JSON.parse(renderBuildTraceValue(again)) as { signatures: { keyName: string }[] }).signatures.map((s) => s.keyName)
  t.same(order, ['asdf', 'nixcas-a-1', 'nixcas-b-1'], 'signatures in Nix set order (by key name)')
})

t.test('malformed build trace entries are refused with the reason', async (t) => {
  const key = parseBuildTraceName(`${DRV}/foo.doi`)
  const sig = (i: number): string => `k${i}:${Buffer.alloc(64, i).toString('base64')}`
  const cases: [string, string, RegExp][] = [
    ['not JSON', '{', /not JSON/],
    ['an array', '[]', /must be a JSON object/],
    ['missing outPath', '{"signatures":[]}', /no "outPath" field/],
    ['outPath not a string', '{"outPath":1}', /"outPath" must be a string/],
    ['full outPath', `{"outPath":"/nix/store/${OUT}"}`, /outPath/],
    ['outPath of another name', `{"outPath":"g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-foo"}`, /is not named bar-foo/],
    ['unknown field', `{"outPath":"${OUT}","extra":true}`, /unknown field "extra"/],
    ['non-empty dependentRealisations', `{"outPath":"${OUT}","dependentRealisations":{"a":"b"}}`, /only an empty object/],
    ['old flat realisation', `{"id":"sha256:${'0'.repeat(64)}!foo","outPath":"${OUT}"}`, /unknown field "id"/],
    ['signatures not an array', `{"outPath":"${OUT}","signatures":{}}`, /must be an array/],
    ['signature object missing sig', `{"outPath":"${OUT}","signatures":[{"keyName":"k"}]}`, /no "sig" field/],
    ['signature object with extra field', `{"outPath":"${OUT}","signatures":[{"keyName":"k","sig":"${ZERO_SIG}","x":1}]}`, /unknown field "x"/],
    ['signature object, bad sig', `{"outPath":"${OUT}","signatures":[{"keyName":"k","sig":"AAAA"}]}`, /64 bytes/],
    ['signature object, bad key name', `{"outPath":"${OUT}","signatures":[{"keyName":"a b","sig":"${ZERO_SIG}"}]}`, /build trace entry: signature must look like/],
    ['signature a number', `{"outPath":"${OUT}","signatures":[1]}`, /must be a "name:base64" string or/],
    ['too many signatures', JSON.stringify({ outPath: OUT, signatures: Array.from({ length: 33 }, (_, i) => sig(i)) }), /more than 32 signatures/],
    ['keyed, other derivation', `{"key":{"drvPath":"g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-baz.drv","outputName":"foo"},"value":{"outPath":"${OUT}"}}`, /does not belong at/],
    ['keyed, other output', `{"key":{"drvPath":"${DRV}","outputName":"out"},"value":{"outPath":"${OUT}"}}`, /does not belong at/],
    ['keyed, missing value', `{"key":{"drvPath":"${DRV}","outputName":"foo"}}`, /no "value" field/],
    ['keyed, value not an object', `{"key":{"drvPath":"${DRV}","outputName":"foo"},"value":"x"}`, /must be a JSON object/],
    ['keyed, extra key field', `{"key":{"drvPath":"${DRV}","outputName":"foo","x":1},"value":{"outPath":"${OUT}"}}`, /unknown field "x"/],
    ['keyed, extra top field', `{"key":{"drvPath":"${DRV}","outputName":"foo"},"value":{"outPath":"${OUT}"},"x":1}`, /unknown field "x"/],
  ]
  for (const [label, text, message] of cases) t.throws(() => parseBuildTraceEntry(text, key), { code: 'BAD_REALISATION', message }, label)
  t.throws(() => parseBuildTraceEntry(`{"outPath":"${OUT}"}`, { drvPath: 'x', outputName: 'foo' }), { code: 'BAD_REALISATION' }, 'the expected key is checked too')
  t.throws(() => parseBuildTraceEntry(JSON.stringify({ outPath: OUT, signatures: [sig(1), sig(2)] }), key, { maxSignatures: 1 }), { message: /more than 1 signatures/ })
  t.equal(parseBuildTraceEntry(JSON.stringify({ outPath: OUT, signatures: [sig(1), sig(1)] }), key).signatures.length, 1, 'repeated signatures collapse')
})

import { readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { parseRealisationName } from '../../src/nix/drv-output.ts'
import { parseNarInfo, renderNarInfo } from '../../src/nix/narinfo.ts'
import {
  parseRealisation,
  realisationFingerprint,
  renderRealisation,
  signRealisation,
  validRealisationSignatures,
  type Realisation,
} from '../../src/nix/realisation.ts'
import { formatPublicKey, generateSecretKey, parsePublicKey } from '../../src/nix/signing.ts'
import { buildCaDerivation, caNix } from '../helpers/ca-derivation.ts'
import { nix, skipWithoutNix } from '../helpers/nix.ts'
import { tempDir } from '../helpers/trees.ts'

// Bodies Nix 2.8 PUT to an HTTP cache (`nix copy --to http://…` of a CA derivation built with
// `secret-key-files` set), with the public half of the key that signed them.
const NIX_KEY = parsePublicKey('cap-test-1:Ty6k3Foz/d2tkSCNAxCGaAeFRolck+NCKPGWkKh+bZ0=')
const DEP_NAME = 'sha256:e3360d3c6f0f48bc0c3b91681463ad4ca5ca66573092fad0046c26fa874e5c99!out.doi'
const DEP_BODY =
  '{"dependentRealisations":{},"id":"sha256:e3360d3c6f0f48bc0c3b91681463ad4ca5ca66573092fad0046c26fa874e5c99!out","outPath":"1pk2ciscqn9pg6iwypin558zi1arf7cq-nixcas-ca-dep","signatures":["cap-test-1:UBtrN3/6roMMC6V7USbWVgx1BG3Pk0x5zUk3RSIIdkO5AwfVgrX/+PW49usZ6dkZ/Q6N8eAX85DBXRriqm33Cg=="]}'
const TOP_NAME = 'sha256:6d7960a5f694eded5979b81a6e9d1ccaa7bf9df79dffc32bbbe3c9609c6ce77d!out.doi'
const TOP_BODY =
  '{"dependentRealisations":{"sha256:e3360d3c6f0f48bc0c3b91681463ad4ca5ca66573092fad0046c26fa874e5c99!out":"1pk2ciscqn9pg6iwypin558zi1arf7cq-nixcas-ca-dep"},"id":"sha256:6d7960a5f694eded5979b81a6e9d1ccaa7bf9df79dffc32bbbe3c9609c6ce77d!out","outPath":"8kxmivqs1wmcsa6pdzvdqbz0hrfnnccn-nixcas-ca","signatures":["cap-test-1:n1EArudmKxdgfCOad2Ew5XfgooG17iupooNYlzrZFIsMPxQyDmrEcefIAzcq+BAaTObQdWp3AkUbD1aePNkpCg=="]}'

const top = (): Realisation => parseRealisation(TOP_BODY, parseRealisationName(TOP_NAME))

t.test('realisations as Nix 2.8 writes them parse, render byte for byte, and its signatures verify', async (t) => {
  for (const [name, body] of [[DEP_NAME, DEP_BODY], [TOP_NAME, TOP_BODY]] as const) {
    const realisation = parseRealisation(body, parseRealisationName(name))
    t.equal(renderRealisation(realisation), body, `${name} renders back unchanged`)
    t.equal(validRealisationSignatures(realisation, [NIX_KEY]).length, 1, `${name}: Nix's signature verifies over our fingerprint`)
  }
  t.equal(
    realisationFingerprint(top()),
    '{"dependentRealisations":{"sha256:e3360d3c6f0f48bc0c3b91681463ad4ca5ca66573092fad0046c26fa874e5c99!out":"1pk2ciscqn9pg6iwypin558zi1arf7cq-nixcas-ca-dep"},"id":"sha256:6d7960a5f694eded5979b81a6e9d1ccaa7bf9df79dffc32bbbe3c9609c6ce77d!out","outPath":"8kxmivqs1wmcsa6pdzvdqbz0hrfnnccn-nixcas-ca"}',
  )
})

t.test("Nix's own golden realisation (libstore-tests, before build traces) parses and renders", async (t) => {
  const pretty = `{
  "dependentRealisations": {},
  "id": "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad!foo",
  "outPath": "g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-foo.drv",
  "signatures": []
}
`
  const realisation = parseRealisation(pretty, parseRealisationName('sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad!foo.doi'))
  t.same(realisation.signatures, [])
  t.equal(renderRealisation(realisation), JSON.stringify(JSON.parse(pretty)))
  const minimal = parseRealisation(
    '{"outPath":"g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-foo","id":"sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad!foo"}',
    realisation.id,
  )
  t.same(minimal.dependentRealisations, {}, 'signatures and dependentRealisations are optional, as for Nix')
  t.match(renderRealisation(minimal), /"signatures":\[\]}$/)
})

t.test('signing round trip: ours verify, changes break them, re-signing replaces', async (t) => {
  const a = generateSecretKey('nixcas-a-1')
  const b = generateSecretKey('nixcas-b-1')
  const signed = signRealisation(signRealisation(top(), [a, b]), [a])
  t.equal(signed.signatures.length, 3, "Nix's signature, then b, then a's replacement")
  t.equal(validRealisationSignatures(signed, [a.publicKey, b.publicKey, NIX_KEY]).length, 3)
  t.equal(validRealisationSignatures({ ...signed, outPath: '8kxmivqs1wmcsa6pdzvdqbz0hrfnnccn-nixcas-cb' }, [a.publicKey]).length, 0, 'outPath is covered')
  t.equal(validRealisationSignatures({ ...signed, dependentRealisations: {} }, [a.publicKey]).length, 0, 'dependencies are covered')
  const again = parseRealisation(renderRealisation(signed), signed.id)
  t.equal(validRealisationSignatures(again, [a.publicKey, b.publicKey, NIX_KEY]).length, 3, 'signatures survive rendering and parsing')
  t.same([...again.signatures], [...signed.signatures].sort(), 'rendered in Nix order (a sorted set)')
})

t.test('malformed realisations are refused with the reason', async (t) => {
  const id = top().id
  const body = JSON.parse(TOP_BODY) as Record<string, unknown>
  const edit = (changes: Record<string, unknown>): string => JSON.stringify({ ...body, ...changes })
  const without = (field: string): string => JSON.stringify(Object.fromEntries(Object.entries(body).filter(([key]) => key !== field)))
  const signature = (i: number): string => `k${i}:${Buffer.alloc(64, i).toString('base64')}`
  const dependencies = (n: number): Record<string, string> =>
    Object.fromEntries(Array.from({ length: n }, (_, i) => [`sha256:${i.toString(16).padStart(64, '0')}!out`, '1pk2ciscqn9pg6iwypin558zi1arf7cq-x']))
  const cases: [string, string, RegExp][] = [
    ['not JSON', '{"id":', /not JSON/],
    ['an array', '[]', /must be a JSON object/],
    ['null', 'null', /must be a JSON object/],
    ['id of another derivation', TOP_BODY.replace('"id":"sha256:6d', '"id":"sha256:7d'), /does not belong at sha256:6d/],
    ['id of another output', TOP_BODY.replace('c6ce77d!out"', 'c6ce77d!dev"'), /does not belong at/],
    ['id not a string', edit({ id: 5 }), /"id" must be a string/],
    ['missing id', without('id'), /no "id" field/],
    ['missing outPath', without('outPath'), /no "outPath" field/],
    ['full outPath', edit({ outPath: '/nix/store/8kxmivqs1wmcsa6pdzvdqbz0hrfnnccn-nixcas-ca' }), /outPath/],
    ['bad outPath', edit({ outPath: '../../etc/passwd' }), /outPath/],
    ['unknown field', edit({ extra: 1 }), /unknown field "extra"/],
    ['__proto__ field', TOP_BODY.replace('{', '{"__proto__":{},'), /unknown field "__proto__"/],
    ['signatures not an array', edit({ signatures: 'k:AAAA' }), /"signatures" must be an array/],
    ['malformed signature', edit({ signatures: ['nocolon'] }), /signature must look like/],
    ['short signature', edit({ signatures: ['k:AAAA'] }), /64 bytes/],
    ['structured signature (not in this format)', edit({ signatures: [{ keyName: 'k', sig: Buffer.alloc(64).toString('base64') }] }), /"name:base64" string/],
    ['control character in a signature', edit({ signatures: [`k\u0001:${Buffer.alloc(64).toString('base64')}`] }), /control character/],
    ['too many signatures', edit({ signatures: Array.from({ length: 33 }, (_, i) => signature(i)) }), /more than 32 signatures/],
    ['dependencies not an object', edit({ dependentRealisations: [] }), /must be an object/],
    ['bad dependency id', edit({ dependentRealisations: { 'sha256:00!out': '1pk2ciscqn9pg6iwypin558zi1arf7cq-x' } }), /64 lowercase hex/],
    ['bad dependency path', edit({ dependentRealisations: { [`sha256:${'0'.repeat(64)}!out`]: '/nix/store/x' } }), /dependent realisation/],
    ['dependency path not a string', edit({ dependentRealisations: { [`sha256:${'0'.repeat(64)}!out`]: 1 } }), /must map to a store path basename/],
    ['too many dependencies', edit({ dependentRealisations: dependencies(4097) }), /more than 4096 dependent realisations/],
  ]
  for (const [label, text, message] of cases) t.throws(() => parseRealisation(text, id), { code: 'BAD_REALISATION', message }, label)

  const many = edit({ signatures: [...Array.from({ length: 32 }, (_, i) => signature(i)), signature(0)] })
  t.equal(parseRealisation(many, id).signatures.length, 32, 'repeated signatures collapse, as in Nix’s set')
  t.throws(() => parseRealisation(edit({ signatures: [signature(1), signature(2)] }), id, { maxSignatures: 1 }), { message: /more than 1 signatures/ })
  t.equal(Object.keys(parseRealisation(edit({ dependentRealisations: dependencies(10) }), id, { maxDependencies: 10 }).dependentRealisations).length, 10)
})

t.test('Nix 2.8 writes realisations we read byte for byte, and accepts the ones we sign', { skip: skipWithoutNix }, async (t) => {
  const dir = await tempDir(t)
  await nix('nix-store', ['--generate-binary-cache-key', 'nix-made-1', join(dir, 'nix.sec'), join(dir, 'nix.pub')])
  const nixKey = parsePublicKey(await readFile(join(dir, 'nix.pub'), 'utf8'))
  const closure = await buildCaDerivation(dir, { secretKeyFile: join(dir, 'nix.sec') })
  const cache = join(dir, 'cache')
  await caNix('nix', ['copy', '--to', `file://${cache}`, ...closure.installable], { cacheHome: join(dir, 'xdg-push') })

  for (const name of (await readdir(cache)).filter((file) => file.endsWith('.narinfo'))) {
    const text = await readFile(join(cache, name), 'utf8')
    const info = parseNarInfo(text)
    t.match(info.ca, /^fixed:r:sha256:/, `${name} carries the output's content address`)
    t.equal(renderNarInfo(info), text, `${name} renders back byte for byte`)
  }

  const names = await readdir(join(cache, 'realisations'))
  t.equal(names.length, 2, 'one realisation per CA derivation')
  t.ok(names.includes(`${closure.realisation.id}.doi`))
  const ours = generateSecretKey('nixcas-test-1')
  for (const name of names) {
    const path = join(cache, 'realisations', name)
    const text = await readFile(path, 'utf8')
    const realisation = parseRealisation(text, parseRealisationName(name))
    t.equal(renderRealisation(realisation), text, `${name} renders back byte for byte`)
    t.equal(validRealisationSignatures(realisation, [nixKey]).length, 1, `${name}: Nix's signature verifies`)
    await writeFile(path, renderRealisation(signRealisation({ ...realisation, signatures: [] }, [ours])))
  }

  // `nix copy --from` checks realisation signatures against trusted-public-keys (substitution
  // in Nix 2.8 does not), so it tells whether Nix accepts our fingerprint and signature.
  const pull = (publicKey: string, name: string): Promise<string> =>
    caNix('nix', ['copy', '--from', `file://${cache}`, '--to', join(dir, name), '--option', 'trusted-public-keys', publicKey, ...closure.installable], {
      cacheHome: join(dir, `xdg-${name}`),
    })
  await t.resolves(pull(formatPublicKey(ours.publicKey), 'store-ours'), 'Nix accepts realisations signed by us')
  await t.rejects(pull(formatPublicKey(generateSecretKey('nixcas-test-1').publicKey), 'store-other'), /lacks a valid signature/, 'and refuses them under another key of that name')
})

import { readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { parseNixHash } from '../../src/nix/hash.ts'
import { parseNarInfo, renderNarInfo } from '../../src/nix/narinfo.ts'
import { narInfoFingerprint, signNarInfo, validNarInfoSignatures } from '../../src/nix/narinfo-signing.ts'
import {
  fingerprintPath,
  formatPublicKey,
  formatSecretKey,
  generateSecretKey,
  parsePublicKey,
  parseSecretKey,
  signFingerprint,
  verifyFingerprint,
} from '../../src/nix/signing.ts'
import { buildClosure } from '../helpers/closure.ts'
import { nix, skipWithoutNix } from '../helpers/nix.ts'
import { tempDir } from '../helpers/trees.ts'

const NAR_HASH = parseNixHash('sha256:1dqscpdnrp93q1q62pp6q26wj5rrr049sn2axcchprzsdchiqlq2')

t.test('fingerprint format', async (t) => {
  t.equal(
    fingerprintPath('/nix/store/hsf304jrmqh22x30v2bfvz22ccrmvk1q-top', NAR_HASH, 528, ['/nix/store/b-x', '/nix/store/a-y']),
    '1;/nix/store/hsf304jrmqh22x30v2bfvz22ccrmvk1q-top;sha256:1dqscpdnrp93q1q62pp6q26wj5rrr049sn2axcchprzsdchiqlq2;528;/nix/store/a-y,/nix/store/b-x',
  )
})

t.test('keys round trip and signatures verify', async (t) => {
  const key = generateSecretKey('cache.example.org-1')
  const again = parseSecretKey(formatSecretKey(key))
  t.equal(formatPublicKey(again.publicKey), formatPublicKey(key.publicKey))
  const publicKey = parsePublicKey(formatPublicKey(key.publicKey))
  const signature = signFingerprint(key, 'hello')
  t.match(signature, /^cache\.example\.org-1:[A-Za-z0-9+/]{86}==$/)
  t.ok(verifyFingerprint([publicKey], 'hello', signature))
  t.notOk(verifyFingerprint([publicKey], 'hellO', signature), 'other data fails')
  t.notOk(verifyFingerprint([parsePublicKey(formatPublicKey(generateSecretKey('cache.example.org-1').publicKey))], 'hello', signature), 'other key fails')
  t.notOk(verifyFingerprint([publicKey], 'hello', `other:${signature.split(':')[1]}`), 'name must match')
  t.notOk(verifyFingerprint([publicKey], 'hello', 'garbage'))
})

t.test('bad keys are refused', async (t) => {
  t.throws(() => parseSecretKey('nocolon'), { code: 'BAD_KEY' })
  t.throws(() => parseSecretKey(`k:${Buffer.alloc(32).toString('base64')}`), { code: 'BAD_KEY', message: /64 bytes/ })
  t.throws(() => parseSecretKey(`k:${Buffer.alloc(64, 7).toString('base64')}`), { code: 'BAD_KEY', message: /does not match/ })
  t.throws(() => parsePublicKey(`k:${Buffer.alloc(31).toString('base64')}`), { code: 'BAD_KEY', message: /32 bytes/ })
  t.throws(() => parsePublicKey('k:not base64!'), { code: 'BAD_KEY' })
  t.throws(() => generateSecretKey('bad name'), { code: 'BAD_KEY' })
})

t.test('several keys sign one narinfo; re-signing replaces the same key', async (t) => {
  const a = generateSecretKey('a')
  const b = generateSecretKey('b')
  const info = parseNarInfo(`StorePath: /nix/store/hsf304jrmqh22x30v2bfvz22ccrmvk1q-x\nURL: nar/x.nar\nCompression: none\nNarHash: ${'sha256:1dqscpdnrp93q1q62pp6q26wj5rrr049sn2axcchprzsdchiqlq2'}\nNarSize: 5\nReferences: wpjqh28ynj0kdpgv9bbmhy126hp7rkxf-dep\n`)
  const signed = signNarInfo(signNarInfo(info, [a, b]), [a])
  t.equal(signed.signatures.length, 2)
  t.equal(validNarInfoSignatures(signed, [a.publicKey, b.publicKey]).length, 2)
  t.equal(validNarInfoSignatures({ ...signed, narSize: 6 }, [a.publicKey, b.publicKey]).length, 0, 'a changed narinfo no longer verifies')
})

t.test('signatures interoperate with the real Nix client', { skip: skipWithoutNix }, async (t) => {
  const dir = await tempDir(t)
  const closure = await buildClosure(dir)

  // Nix signs with its own key; our code verifies.
  await nix('nix-store', ['--generate-binary-cache-key', 'nix-made-1', join(dir, 'nix.sec'), join(dir, 'nix.pub')])
  const nixPublic = parsePublicKey(await readFile(join(dir, 'nix.pub'), 'utf8'))
  t.equal(formatSecretKey(parseSecretKey(await readFile(join(dir, 'nix.sec'), 'utf8'))), (await readFile(join(dir, 'nix.sec'), 'utf8')).trim(), 'Nix secret key files round trip')
  const nixCache = join(dir, 'nix-signed')
  await nix('nix', ['copy', '--to', `file://${nixCache}?secret-key=${join(dir, 'nix.sec')}`, closure.top])
  for (const name of (await readdir(nixCache)).filter((file) => file.endsWith('.narinfo'))) {
    const info = parseNarInfo(await readFile(join(nixCache, name), 'utf8'))
    t.equal(validNarInfoSignatures(info, [nixPublic]).length, 1, `${name}: Nix's signature verifies with our code`)
  }

  // We sign with a key we generated; Nix verifies with our public key.
  const ours = generateSecretKey('nixcas-test-1')
  await writeFile(join(dir, 'ours.sec'), formatSecretKey(ours))
  const cache = join(dir, 'cache')
  await nix('nix', ['copy', '--to', `file://${cache}`, closure.top])
  for (const name of (await readdir(cache)).filter((file) => file.endsWith('.narinfo'))) {
    const path = join(cache, name)
    const info = parseNarInfo(await readFile(path, 'utf8'))
    t.equal(info.signatures.length, 0)
    const signed = signNarInfo(info, [ours])
    t.equal(validNarInfoSignatures(signed, [ours.publicKey]).length, 1)
    t.ok(narInfoFingerprint(signed).startsWith(`1;${info.storePath};`))
    await writeFile(path, renderNarInfo(signed))
  }
  const verify = (publicKey: string): Promise<Buffer> =>
    nix('nix', ['store', 'verify', '--store', `file://${cache}`, '--option', 'trusted-public-keys', publicKey, '--recursive', closure.top])
  await t.resolves(verify(formatPublicKey(ours.publicKey)), 'nix store verify accepts our signatures')
  await t.rejects(verify(formatPublicKey(generateSecretKey('nixcas-test-1').publicKey)), 'and refuses them under another key')

  // Nix signs with a key file we wrote.
  const nixWithOurKey = join(dir, 'with-our-key')
  await nix('nix', ['copy', '--to', `file://${nixWithOurKey}?secret-key=${join(dir, 'ours.sec')}`, closure.top])
  for (const name of (await readdir(nixWithOurKey)).filter((file) => file.endsWith('.narinfo'))) {
    const info = parseNarInfo(await readFile(join(nixWithOurKey, name), 'utf8'))
    t.equal(validNarInfoSignatures(info, [ours.publicKey]).length, 1, `${name}: Nix accepts our secret key file`)
  }
})

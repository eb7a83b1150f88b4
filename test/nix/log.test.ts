import t from 'tap'
import { parseLogName } from '../../src/nix/log.ts'

t.test('log names are derivation basenames', async (t) => {
  // What Nix 2.8 PUT for `nix store copy-log --to http://…`: log/<drv basename>.
  t.same(parseLogName('ydljrnyp34hqkcg2crah8qyfrw0hksi9-nixcas-logged.drv'), { hash: 'ydljrnyp34hqkcg2crah8qyfrw0hksi9', name: 'nixcas-logged.drv' })
  const cases: [string, RegExp][] = [
    ['ydljrnyp34hqkcg2crah8qyfrw0hksi9-nixcas-logged', /not a derivation/],
    ['ydljrnyp34hqkcg2crah8qyfrw0hksi9-x.drv.gz', /not a derivation/],
    ['ydljrnyp34hqkcg2crah8qyfrw0hksi9', /is not <32 nixbase32 characters>-<name>/],
    ['eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-x.drv', /is not <32 nixbase32 characters>-<name>/],
    ['../../etc/passwd.drv', /is not <32 nixbase32 characters>-<name>/],
    ['ydljrnyp34hqkcg2crah8qyfrw0hksi9-a/../b.drv', /outside/],
    ['ydljrnyp34hqkcg2crah8qyfrw0hksi9-a b.drv', /outside/],
    ['ydljrnyp34hqkcg2crah8qyfrw0hksi9-.drv', /starts with a dot/],
    ['', /is not <32 nixbase32 characters>-<name>/],
  ]
  for (const [name, message] of cases) t.throws(() => parseLogName(name), { code: 'BAD_STORE_PATH', message }, JSON.stringify(name))
})

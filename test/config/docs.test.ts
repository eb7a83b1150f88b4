import t from 'tap'
import { effectiveSettings, REFERENCE_BEGIN, REFERENCE_END, settingsReference, withReference } from '../../src/config/docs.ts'
import { integer, stringList } from '../../src/config/kinds.ts'
import { setting } from '../../src/config/setting.ts'

const tree = {
  port: setting({ kind: integer, default: 1, min: 1, env: 'NIXCAS_T_PORT', flag: '--port <n>', doc: 'a | b' }),
  auth: { tokens: setting({ kind: stringList, default: [], secret: true, doc: 'secret' }) },
  limit: setting({ kind: integer, doc: 'optional' }),
}

t.test('the reference: one row per setting, pipes escaped', async (t) => {
  t.equal(
    settingsReference(tree),
    [
      '| Setting | Meaning | Kind | Default | Environment, flag |',
      '|---|---|---|---|---|',
      '| `port` | a \\| b | integer, at least `1` | `1` | `NIXCAS_T_PORT`, `--port` |',
      '| `auth.tokens` | secret | list of strings (comma-separated in the environment) | empty | — |',
      '| `limit` | optional | integer | unset | — |',
      '',
    ].join('\n'),
  )
})

t.test('effective settings: secrets redacted, origins named', async (t) => {
  const origins = new Map([['port', { from: 'env' as const, name: 'NIXCAS_T_PORT' }], ['auth.tokens', { from: 'file' as const, file: '/x' }]])
  t.same(effectiveSettings(tree, { port: 3, auth: { tokens: ['hunter2'] } }, origins), ['port         3             NIXCAS_T_PORT', 'auth.tokens  (1 redacted)  file', 'limit        unset'])
})

t.test('the README section between the markers is replaced, and nothing else', async (t) => {
  const text = `intro\n${REFERENCE_BEGIN}\nold table\n${REFERENCE_END}\noutro\n`
  const once = withReference(text, '| new |\n', 'README.md')
  t.equal(once, `intro\n${REFERENCE_BEGIN}\n| new |\n\n${REFERENCE_END}\noutro\n`)
  t.equal(withReference(once, '| new |\n', 'README.md'), once, 'idempotent')
  t.throws(() => withReference('no markers', 'x', 'README.md'), /README\.md has no/)
})

import { PassThrough } from 'node:stream'
import { setImmediate as tick } from 'node:timers/promises'
import t from 'tap'
import { ByteBudget } from '../../src/budget.ts'
import { readAhead } from '../../src/http/read-ahead.ts'

const KiB = 1024

/** Waits (by turns of the event loop, up to a generous bound) until `condition` holds. */
async function until(condition: () => boolean, what: string): Promise<void> {
  for (let turn = 0; turn < 100_000 && !condition(); turn++) await tick()
  if (!condition()) throw new Error(`never: ${what}`)
}

t.test('a body that fits the window is read in while the consumer waits, inside the budget', async (t) => {
  const source = new PassThrough()
  const budget = new ByteBudget(1024 * KiB)
  const pieces = Array.from({ length: 10 }, (_, index) => Buffer.alloc(16 * KiB, index))
  for (const piece of pieces) source.write(piece)
  source.end()
  let ended = false
  source.once('end', () => (ended = true))
  const body = readAhead(source, 256 * KiB, budget)
  const first = await body.next()
  t.same(first.value, pieces[0])
  await until(() => ended, 'the source ended')
  t.pass('the whole body was read from the source before the consumer asked for more')
  t.equal(budget.inUse, 9 * 16 * KiB, 'what waits is counted in the budget')
  const rest: Buffer[] = []
  for await (const piece of body) rest.push(Buffer.from(piece))
  t.same(Buffer.concat(rest), Buffer.concat(pieces.slice(1)))
  t.equal(budget.inUse, 0, 'all given back')
})

t.test('reading ahead stops at the window, and when the budget has no room', async (t) => {
  for (const [window, capacity] of [
    [32 * KiB, 1024 * KiB],
    [1024 * KiB, 32 * KiB],
  ] as const) {
    const source = new PassThrough({ highWaterMark: 16 * KiB })
    const budget = new ByteBudget(capacity)
    const body = readAhead(source, window, budget)
    const pending = body.next()
    let written = 0
    // Write until the source pushes back: what readAhead took is what it read ahead.
    while (source.write(Buffer.alloc(8 * KiB))) {
      written += 8 * KiB
      await tick()
      if (written > 4096 * KiB) break
    }
    await pending
    await tick()
    t.ok(written < 2 * Math.min(window, capacity) + 64 * KiB, `window ${window / KiB} KiB, budget ${capacity / KiB} KiB: ${written / KiB} KiB taken before the source was paused`)
    t.ok(budget.inUse <= capacity)
    await body.return(undefined)
    t.equal(budget.inUse, 0, 'a consumer that stops gives everything back')
  }
})

t.test('a source that closes before its end is an ABORTED body; errors come through', async (t) => {
  const closed = new PassThrough()
  const budget = new ByteBudget(1024 * KiB)
  const body = readAhead(closed, 64 * KiB, budget)
  closed.write(Buffer.from('half a body'))
  closed.destroy()
  const seen: Buffer[] = []
  await t.rejects(
    (async () => {
      for await (const piece of body) seen.push(Buffer.from(piece))
    })(),
    { code: 'ABORTED' },
  )
  t.equal(budget.inUse, 0)

  const failing = new PassThrough()
  const broken = readAhead(failing, 64 * KiB, budget)
  failing.destroy(new Error('reset'))
  await t.rejects(broken.next(), { message: 'reset' })
  t.equal(budget.inUse, 0)
})

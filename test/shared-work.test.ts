import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { SharedWork } from '../src/shared-work.ts'

t.test('callers that arrive together share one run of the work', async (t) => {
  const shared = new SharedWork<string, number>()
  let runs = 0
  const work = async (): Promise<number> => {
    runs++
    await sleep(20)
    return 42
  }
  const answers = await Promise.all(Array.from({ length: 10 }, () => shared.run('a', work)))
  t.same(answers, Array(10).fill(42))
  t.equal(runs, 1, 'one run for ten callers')
  t.equal(shared.size, 0, 'the key is free once it ended')
  t.equal(await shared.run('a', work), 42)
  t.equal(runs, 2, 'a later caller starts it again')
  const failing = (): Promise<number> => Promise.reject(new Error('store down'))
  await t.rejects(Promise.all([shared.run('b', failing), shared.run('b', failing)]), { message: 'store down' }, 'a failure reaches every caller')
  t.equal(shared.size, 0)
})

t.test('the work stops only when every caller waiting on it has gone', async (t) => {
  const shared = new SharedWork<string, string>()
  let stopped: unknown
  const work = (signal: AbortSignal): Promise<string> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => resolve('done'), 200)
      signal.addEventListener('abort', () => {
        clearTimeout(timer)
        stopped = signal.reason
        reject(new Error('stopped'))
      })
    })
  const first = new AbortController()
  const second = new AbortController()
  const a = shared.run('k', work, first.signal)
  const b = shared.run('k', work, second.signal)
  first.abort(new Error('first client left'))
  await t.rejects(a, { message: 'first client left' }, 'a caller that goes is answered at once')
  t.equal(stopped, undefined, 'the other still waits: the work goes on')
  t.equal(await b, 'done')

  const third = new AbortController()
  const c = shared.run('k', work, third.signal)
  third.abort(new Error('last client left'))
  await t.rejects(c, { message: 'last client left' })
  await sleep(1)
  t.match(stopped, { message: 'last client left' }, 'the last caller gone stops the work')
  t.equal(shared.size, 0, 'and frees the key at once')
  const gone = new AbortController()
  gone.abort(new Error('gone before'))
  await t.rejects(shared.run('k', work, gone.signal), { message: 'gone before' }, 'a caller already gone starts nothing')
  t.equal(shared.size, 0)
})

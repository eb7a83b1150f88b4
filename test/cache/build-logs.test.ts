import { randomBytes } from 'node:crypto'
import t from 'tap'
import { ByteBudget } from '../../src/budget.ts'
import { BuildLogs } from '../../src/cache/build-logs.ts'
import { Cas } from '../../src/cas/cas.ts'
import { MemoryStore } from '../../src/stores/memory.ts'
import { collect } from '../helpers/streams.ts'
import { storedBytes } from '../helpers/cas.ts'

const DRV = 'hsf304jrmqh22x30v2bfvz22ccrmvk1q-big.drv'

async function* pieces(bytes: Buffer, size: number): AsyncGenerator<Uint8Array> {
  for (let offset = 0; offset < bytes.length; offset += size) yield bytes.subarray(offset, offset + size)
}

t.test('a log larger than a part is stored in parts, holding one part of the shared budget at a time', async (t) => {
  // Incompressible: about 10 MiB stored.
  const text = randomBytes(10 * 1024 * 1024)
  for (const capacity of [64 * 1024 * 1024, 1024 * 1024]) {
    const store = new MemoryStore('logs')
    const budget = new ByteBudget(capacity)
    const logs = new BuildLogs(new Cas(store), 64 * 1024 * 1024, budget)
    const record = await logs.put(DRV, pieces(text, 256 * 1024))
    t.equal(record.size, text.length)
    // Parts of 4 MiB; smaller ones when the budget is short (a part is written rather than waited on).
    t.ok(capacity > 4 * 1024 * 1024 ? record.parts.length === 3 : record.parts.length >= 10, `${capacity}: ${record.parts.length} parts`)
    t.equal((await storedBytes(store, 'logs/')).objects, record.parts.length)
    t.equal(budget.inUse, 0, 'everything was given back')
    t.ok(budget.peak <= Math.min(capacity, 4 * 1024 * 1024) + 1024 * 1024, `held at most a part, overshooting by at most one piece (peak ${budget.peak})`)

    const read = await logs.record(DRV)
    if (read === undefined) throw new Error('no record')
    t.ok((await collect(await logs.text(read))).equals(text), 'the text comes back')
    t.equal((await collect(await logs.stored(read))).length, record.storedSize, 'the stored bytes come back in order')
  }
})

t.test('the same log for two derivations is stored once; parts are checked on an untrusted store', async (t) => {
  const store = new MemoryStore('logs')
  const cas = new Cas(store)
  const logs = new BuildLogs(cas, 1024 * 1024)
  const text = Buffer.from('hello\n'.repeat(1000))
  await logs.put(DRV, pieces(text, 100))
  await logs.put('wpjqh28ynj0kdpgv9bbmhy126hp7rkxf-other.drv', pieces(text, 1000))
  t.equal((await storedBytes(store, 'logs/')).objects, 1)

  // A store whose bytes are not trusted: a damaged part is refused before anything is sent.
  const untrusted = Object.assign(Object.create(store) as MemoryStore, { trusted: false })
  const checked = new BuildLogs(new Cas(untrusted), 1024 * 1024)
  const record = await checked.record(DRV)
  if (record === undefined) throw new Error('no record')
  const key = (await collectKeys(store, 'logs/'))[0] as string
  const damaged = Buffer.from((await store.get(key)) as Buffer)
  damaged.writeUInt8(damaged.readUInt8(damaged.length - 1) ^ 1, damaged.length - 1)
  await store.put(key, damaged)
  await t.rejects(checked.stored(record), { code: 'CORRUPT_OBJECT' })
  await t.rejects(checked.text(record), { code: 'CORRUPT_OBJECT' })
})

async function collectKeys(store: MemoryStore, prefix: string): Promise<string[]> {
  const keys: string[] = []
  for await (const object of store.list(prefix)) keys.push(object.key)
  return keys
}

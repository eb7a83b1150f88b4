import { createHash, randomBytes } from 'node:crypto'
import type { Test } from 'tap'
import type { ObjectStore } from '../../src/stores/store.ts'
import { collect } from '../helpers/streams.ts'

export interface ConformanceOptions {
  /** Keys listed to prove paging works; backends page at 1000. */
  listCount?: number
  /** Why the atomic-put check cannot run against this server, if it cannot. */
  skipAtomic?: string
  /** Why this server cannot take concurrent deletes of neighbouring keys, if it cannot. */
  skipDeleteMany?: string
  /** Why this server does not list in key order when a name is both a "directory" and the start of a sibling's name, if it does not. */
  skipKeyOrder?: string
}

const sha = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex')

async function streamed(store: ObjectStore, key: string, range?: { offset: number; length?: number }): Promise<Buffer | undefined> {
  const source = await store.stream(key, range ? { range } : undefined)
  return source && collect(source)
}

async function inParallel<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < items.length) await work(items[next++] as T)
  }))
}

/**
 * The contract every backend and wrapper must keep. `make` returns a fresh, empty store.
 */
export function conformance(t: Test, make: (t: Test) => Promise<ObjectStore>, options: ConformanceOptions = {}): void {
  t.test('absent is an answer, present returns the bytes', async (t) => {
    const store = await make(t)
    t.equal(await store.get('objects/missing'), undefined)
    t.equal(await store.head('objects/missing'), undefined)
    t.equal(await store.stream('objects/missing'), undefined)
    const bytes = randomBytes(1234)
    await store.put('objects/present', bytes)
    t.ok((await store.get('objects/present'))?.equals(bytes))
    t.ok((await streamed(store, 'objects/present'))?.equals(bytes))
    t.equal(await store.head('objects/present'), 1234)
    await store.put('objects/present', Buffer.from('replaced'))
    t.equal((await store.get('objects/present'))?.toString(), 'replaced', 'put replaces')
  })

  t.test('ranges at the edges', async (t) => {
    const store = await make(t)
    const bytes = randomBytes(1000)
    await store.put('ranges/object', bytes)
    const cases: [string, { offset: number; length?: number }, Buffer][] = [
      ['first byte', { offset: 0, length: 1 }, bytes.subarray(0, 1)],
      ['last byte', { offset: 999, length: 1 }, bytes.subarray(999)],
      ['to the end', { offset: 999 }, bytes.subarray(999)],
      ['middle', { offset: 100, length: 300 }, bytes.subarray(100, 400)],
      ['clipped at the end', { offset: 900, length: 500 }, bytes.subarray(900)],
      ['whole', { offset: 0 }, bytes],
      ['empty length', { offset: 10, length: 0 }, Buffer.alloc(0)],
      ['at the end', { offset: 1000 }, Buffer.alloc(0)],
      ['past the end', { offset: 5000, length: 10 }, Buffer.alloc(0)],
    ]
    for (const [label, range, expected] of cases) {
      t.same((await store.get('ranges/object', { range }))?.toString('hex'), expected.toString('hex'), `get: ${label}`)
      t.same((await streamed(store, 'ranges/object', range))?.toString('hex'), expected.toString('hex'), `stream: ${label}`)
    }
    t.equal(await store.get('ranges/missing', { range: { offset: 5, length: 1 } }), undefined, 'a range of an absent object is absent')
  })

  t.test('put is atomic under concurrent readers', { skip: options.skipAtomic ?? false }, async (t) => {
    const store = await make(t)
    const before = Buffer.alloc(300_000, 'a')
    const after = Buffer.alloc(300_000, 'b')
    await store.put('atomic/object', before)
    const seen = new Set<string>()
    const reads = Array.from({ length: 20 }, async (_, index) => {
      await new Promise((resolve) => setTimeout(resolve, index))
      const got = await store.get('atomic/object')
      seen.add(got === undefined ? 'absent' : got.equals(before) ? 'before' : got.equals(after) ? 'after' : 'torn')
    })
    await Promise.all([store.put('atomic/object', after), ...reads])
    t.notOk(seen.has('torn'), `readers saw only whole objects: ${[...seen].join(', ')}`)
    t.notOk(seen.has('absent'), 'and never a missing one')
    t.ok((await store.get('atomic/object'))?.equals(after))
  })

  t.test('a ranged get may read into a buffer of the caller', async (t) => {
    const store = await make(t)
    const bytes = randomBytes(300_000)
    await store.put('allocated/object', bytes)
    const made: Buffer[] = []
    const allocate = (size: number): Buffer => {
      const buffer = Buffer.alloc(size + 100).subarray(0, size)
      made.push(buffer)
      return buffer
    }
    for (const range of [{ offset: 1000, length: 200_000 }, { offset: 250_000, length: 100_000 }, { offset: 0, length: 300_000 }]) {
      const before = made.length
      const got = await store.get('allocated/object', { range, allocate })
      t.ok(got?.equals(bytes.subarray(range.offset, range.offset + range.length)), `bytes ${range.offset}+${range.length}`)
      if (made.length > before) t.equal(got?.buffer, made.at(-1)?.buffer, 'in the buffer it asked for, when it asked for one')
    }
    t.equal(await store.get('allocated/missing', { range: { offset: 0, length: 10 }, allocate }), undefined)
  })

  t.test('a put that need not be durable is still atomic and visible at once', async (t) => {
    const store = await make(t)
    await store.put('hints/object', Buffer.from('first'), { durable: false })
    t.equal((await store.get('hints/object'))?.toString(), 'first')
    await store.put('hints/object', Buffer.from('second'), { durable: false })
    t.equal((await store.get('hints/object'))?.toString(), 'second', 'and replaces')
    t.equal(await store.head('hints/object'), 6)
  })

  t.test('delete', async (t) => {
    const store = await make(t)
    await t.resolves(store.delete('deleted/never-existed'), 'deleting an absent object is fine')
    await store.put('deleted/object', Buffer.from('x'))
    await store.delete('deleted/object')
    t.equal(await store.get('deleted/object'), undefined)
    t.equal(await store.head('deleted/object'), undefined)
  })

  t.test('deleteMany: in batches, absent keys are fine, others stay', { skip: options.skipDeleteMany ?? false }, async (t) => {
    const store = await make(t)
    const keys = Array.from({ length: 1005 }, (_, index) => `many/${String(index).padStart(4, '0')}`)
    await Promise.all(keys.slice(0, 40).map((key) => store.put(key, Buffer.from(key))))
    await store.put('kept/object', Buffer.from('x'))
    await store.deleteMany(keys)
    await t.resolves(store.deleteMany([]), 'an empty batch is fine')
    const left: string[] = []
    for await (const object of store.list('')) left.push(object.key)
    t.same(left, ['kept/object'])
  })

  t.test('list with a prefix, across pages', async (t) => {
    const store = await make(t)
    const count = options.listCount ?? 1100
    const keys = Array.from({ length: count }, (_, index) => `list/a/${String(index).padStart(5, '0')}`)
    await inParallel(keys, 16, (key) => store.put(key, Buffer.from(key)))
    await store.put('list/b/other', Buffer.from('other'))
    await store.put('listing-not-this', Buffer.from('no'))
    const listed = []
    for await (const object of store.list('list/a/')) listed.push(object)
    t.equal(listed.length, count, `all ${count} keys listed`)
    t.same(new Set(listed.map((object) => object.key)), new Set(keys))
    t.ok(listed.every((object) => object.size === object.key.length), 'sizes are reported')
    const now = Date.now()
    t.ok(listed.every((object) => Math.abs(now - object.modified) < 24 * 3600_000), 'modification times are reported')
    const partial = []
    for await (const object of store.list('list/b')) partial.push(object.key)
    t.same(partial, ['list/b/other'], 'a prefix need not end at a slash')
  })

  t.test('list: in ascending key order, a name before the keys under it when it sorts first', { skip: options.skipKeyOrder ?? false }, async (t) => {
    const store = await make(t)
    const keys = ['order/ab/x', 'order/ab-c', 'order/ab.d', 'order/abc', 'order/aa/z/y', 'order/b', 'order/ab/w/v']
    for (const key of keys) await store.put(key, Buffer.from(key))
    const listed: string[] = []
    for await (const object of store.list('order/')) listed.push(object.key)
    t.same(listed, [...keys].sort())
  })

  t.test('a 20 MB object goes in and streams out', async (t) => {
    const store = await make(t)
    const block = randomBytes(1024 * 1024)
    const total = 20 * block.length
    const parts = Array.from({ length: 20 }, (_, index) => {
      const part = Buffer.from(block)
      part[0] = index
      return part
    })
    const whole = Buffer.concat(parts)
    await store.put('large/object', whole)
    const expected = sha(whole)
    t.equal(await store.head('large/object'), total)
    const source = await store.stream('large/object')
    t.ok(source, 'present')
    const got = createHash('sha256')
    let size = 0
    for await (const chunk of source ?? []) {
      got.update(chunk)
      size += chunk.length
    }
    t.equal(size, total)
    t.equal(got.digest('hex'), expected, 'identical bytes')
    const middle = await store.get('large/object', { range: { offset: 5 * block.length - 3, length: 7 } })
    t.equal(middle?.length, 7)
    t.equal(middle?.[3], 5, 'a range across a part boundary')
  })

  t.test('the empty object', async (t) => {
    const store = await make(t)
    await store.put('empty/object', Buffer.alloc(0))
    t.same(await store.get('empty/object'), Buffer.alloc(0), 'present and empty, not absent')
    t.equal(await store.head('empty/object'), 0)
    t.same(await streamed(store, 'empty/object'), Buffer.alloc(0))
    t.equal(sha(Buffer.alloc(0)), sha((await store.get('empty/object')) ?? Buffer.from('x')))
  })

  t.test('keys that could escape are refused', async (t) => {
    const store = await make(t)
    for (const key of ['../escape', 'a/../../b', '/absolute', 'a//b', '.hidden', 'a/./b', 'space here', 'back\\slash', '', 'a/']) {
      await t.rejects(store.put(key, Buffer.from('x')), { code: 'STORE_FAILED' }, `put ${JSON.stringify(key)}`)
      await t.rejects(store.get(key), { code: 'STORE_FAILED' }, `get ${JSON.stringify(key)}`)
    }
  })
}

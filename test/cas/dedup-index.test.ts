import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { Cas } from '../../src/cas/cas.ts'
import { DedupIndex } from '../../src/cas/dedup-index.ts'
import { keys } from '../../src/cas/keys.ts'
import type { IndexedChunk } from '../../src/castore/index-segment.ts'
import { MemoryStore } from '../../src/stores/memory.ts'

const chunksOf = (count: number): IndexedChunk[] => Array.from({ length: count }, (_, index) => ({ digest: randomBytes(32), size: 1000 + index, pack: randomBytes(32), offset: index * 1000 }))

async function segments(store: MemoryStore): Promise<string[]> {
  const found: string[] = []
  for await (const object of store.list(keys.indexSegments)) found.push(object.key)
  return found
}

t.test('what uploads add is known here at once and goes out to other replicas in one segment', async (t) => {
  const store = new MemoryStore('memory')
  const cas = new Cas(store)
  const index = new DedupIndex(1000, { publishMs: 300 })
  const first = chunksOf(3)
  const second = chunksOf(2)
  await index.publish(cas, first)
  await index.publish(cas, second)
  t.ok(index.get(first[0]!.digest) && index.get(second[1]!.digest), 'this replica knows them at once')
  t.same(await segments(store), [], 'no segment yet')
  const other = new DedupIndex(1000)
  t.equal(await other.refresh(cas), 0, 'another replica learns nothing yet')
  for (const deadline = Date.now() + 30_000; (await segments(store)).length === 0 && Date.now() < deadline; ) await sleep(20)
  t.equal((await segments(store)).length, 1, 'one segment for both uploads, within the interval')
  t.equal(await other.refresh(cas), 5, 'then learns all of them')
  await index.publish(cas, chunksOf(4))
  await index.close()
  t.equal((await segments(store)).length, 2, 'closing writes what waits')
  t.equal(await other.refresh(cas), 4, 'a refresh reads only the new segment')
})

class FlakyStore extends MemoryStore {
  failPuts = false

  override async put(key: string, bytes: Uint8Array): Promise<void> {
    if (this.failPuts) throw new Error('store down')
    await super.put(key, bytes)
  }
}

t.test('a segment that fails to go out is tried again with the next', async (t) => {
  const store = new FlakyStore('memory')
  const cas = new Cas(store)
  const errors: unknown[] = []
  const index = new DedupIndex(1000, { publishMs: 20, onError: (error) => errors.push(error) })
  store.failPuts = true
  await index.publish(cas, chunksOf(3))
  await index.flush()
  t.equal(errors.length, 1, 'the failure is told')
  store.failPuts = false
  await index.publish(cas, chunksOf(2))
  await index.close()
  t.equal(await new DedupIndex(1000).refresh(cas), 5, 'nothing was lost')
})

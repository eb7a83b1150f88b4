import { spawn } from 'node:child_process'
import { mkdir, readdir, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { FsStore } from '../../src/stores/fs.ts'
import { tempDir } from '../helpers/trees.ts'
import { conformance } from './conformance.ts'

t.test('conformance', async (t) => conformance(t, async (t) => new FsStore('disk', { path: await tempDir(t) })))

t.test('keys cannot leave the root', async (t) => {
  const root = await tempDir(t)
  const outside = await tempDir(t)
  await writeFile(join(outside, 'secret'), 'secret')
  const store = new FsStore('disk', { path: join(root, 'store') })
  for (const key of ['../secret', `..${outside}/secret`, outside.slice(1) + '/../../secret', 'x/../../secret']) {
    await t.rejects(store.get(key), { code: 'STORE_FAILED', message: /not a valid object key/ }, key)
  }
  await t.rejects(store.put('../../etc/x', Buffer.from('x')), { code: 'STORE_FAILED' })
  t.same(await readdir(outside), ['secret'], 'nothing written outside')
})

t.test('a delete removes the directory it empties; a put makes it again', async (t) => {
  const root = await tempDir(t)
  const store = new FsStore('disk', { path: root })
  await store.put('leases/one/start', Buffer.from('lease'))
  await store.put('leases/one/claim-0', Buffer.from('x'))
  await store.put('leases/two/start', Buffer.from('lease'))
  await store.delete('leases/one/start')
  t.same((await readdir(join(root, 'leases'))).sort(), ['one', 'two'], 'a directory still holding an object stays')
  await store.deleteMany(['leases/one/claim-0', 'leases/two/start'])
  t.same(await readdir(join(root, 'leases')), [], 'the directories they emptied are gone')
  // The store remembers directories it made: one removed under it is made again.
  await store.put('leases/one/start', Buffer.from('again'))
  t.equal((await store.get('leases/one/start'))?.toString(), 'again')
})

t.test('pruneEmptyDirectories removes the empty directories under a prefix, nothing else', async (t) => {
  const root = await tempDir(t)
  const store = new FsStore('disk', { path: root })
  await store.put('leases/live/start', Buffer.from('lease'))
  await store.put('other/x/y', Buffer.from('y'))
  for (const name of ['a', 'b', 'c']) await mkdir(join(root, 'leases', name))
  await mkdir(join(root, 'other', 'empty'))
  t.equal(await store.pruneEmptyDirectories('leases/'), 3)
  t.same(await readdir(join(root, 'leases')), ['live'])
  t.same((await readdir(join(root, 'other'))).sort(), ['empty', 'x'], 'other prefixes are left alone')
  t.equal(await store.pruneEmptyDirectories('missing/'), 0)
})

t.test('a crash between the temp write and the rename leaves nothing visible', async (t) => {
  const root = await tempDir(t)
  // A child process starts a large put (write, then fsync) and is killed as soon as its temp file exists.
  const script = `
    import { FsStore } from ${JSON.stringify(new URL('../../src/stores/fs.ts', import.meta.url).pathname)}
    const store = new FsStore('disk', { path: ${JSON.stringify(root)} })
    await store.put('chunks/ab/abcdef', Buffer.alloc(512 * 1024 * 1024, 1))
  `
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'inherit'] })
  const exited = new Promise((resolve) => child.once('exit', resolve))
  for (let polls = 0; polls < 6000; polls++) {
    if ((await readdir(join(root, '.tmp')).catch(() => [])).length > 0) break
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  child.kill('SIGKILL')
  await exited
  const temps = await readdir(join(root, '.tmp'))
  t.ok(temps.length > 0, 'the killed writer left a temp file behind')
  const store = new FsStore('disk', { path: root })
  t.equal(await store.get('chunks/ab/abcdef'), undefined, 'the object is not visible')
  t.equal(await store.head('chunks/ab/abcdef'), undefined)
  const listed = []
  for await (const object of store.list('')) listed.push(object.key)
  t.same(listed, [], 'nor listed')
})

t.test('symlinks inside the root are not followed out of it by list', async (t) => {
  const root = await tempDir(t)
  const outside = await tempDir(t)
  await writeFile(join(outside, 'x'), 'x')
  const store = new FsStore('disk', { path: root })
  await store.put('a/b', Buffer.from('b'))
  await symlink(outside, join(root, 'a', 'link'))
  const listed = []
  for await (const object of store.list('a/')) listed.push(object.key)
  t.same(listed, ['a/b'])
})

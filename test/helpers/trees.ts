import { randomBytes } from 'node:crypto'
import { chmod, mkdir, mkdtemp, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** A fresh temporary directory removed when the test ends. */
export async function tempDir(t: { teardown: (fn: () => Promise<void>) => void }, prefix = 'nixcas-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  const { rm } = await import('node:fs/promises')
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

async function file(path: string, contents: string | Uint8Array, mode = 0o644): Promise<void> {
  await writeFile(path, contents)
  await chmod(path, mode)
}

/**
 * The golden trees: every shape a NAR can take, each in its own directory under `root`.
 * Returns name → path.
 */
export async function makeGoldenTrees(root: string): Promise<Record<string, string>> {
  await mkdir(root, { recursive: true })
  const trees: Record<string, string> = {}
  const tree = async (name: string, build: (dir: string) => Promise<void>): Promise<void> => {
    const dir = join(root, name)
    await build(dir)
    trees[name] = dir
  }

  await tree('empty-file', (dir) => file(dir, ''))
  await tree('executable', (dir) => file(dir, '#!/bin/sh\necho hi\n', 0o755))
  await tree('empty-executable', (dir) => file(dir, '', 0o755))
  await tree('relative-symlink', (dir) => symlink('../some/where', dir))
  await tree('absolute-symlink', (dir) => symlink('/nix/store/00000000000000000000000000000000-x/bin/sh', dir))
  await tree('empty-directory', (dir) => mkdir(dir))
  await tree('nested-20', async (dir) => {
    let path = dir
    for (let depth = 0; depth < 20; depth++) path = join(path, `level-${depth}`)
    await mkdir(path, { recursive: true })
    await file(join(path, 'leaf'), 'deep\n')
  })
  await tree('odd-names', async (dir) => {
    await mkdir(dir)
    for (const name of ['with space', 'ünïcödé', '日本語', 'tab\there', 'a-b_c.d', 'Z', 'z', '+', '=', '~']) {
      await file(join(dir, name), `${name}\n`)
    }
    await symlink('with space', join(dir, 'link to space'))
  })
  await tree('random-5mb', (dir) => file(dir, randomBytes(5 * 1024 * 1024)))
  await tree('many-small', async (dir) => {
    for (let group = 0; group < 12; group++) {
      const sub = join(dir, `group-${group}`)
      await mkdir(sub, { recursive: true })
      for (let index = 0; index < 30; index++) {
        await file(join(sub, `file-${index}.txt`), randomBytes(index * 37).toString('base64'), index % 7 === 0 ? 0o755 : 0o644)
      }
    }
  })
  await tree('mixed', async (dir) => {
    await mkdir(join(dir, 'bin'), { recursive: true })
    await mkdir(join(dir, 'share', 'empty'), { recursive: true })
    await file(join(dir, 'bin', 'tool'), randomBytes(3000), 0o755)
    await file(join(dir, 'share', 'padded-7'), 'sevenby')
    await file(join(dir, 'share', 'padded-8'), 'eightbyt')
    await symlink('../bin/tool', join(dir, 'share', 'tool-link'))
    await symlink('/etc/hostname', join(dir, 'abs-link'))
  })
  return trees
}

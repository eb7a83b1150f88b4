import t from 'tap'
import lzma from 'lzma-native'
import { renderRealisation } from '../../src/nix/realisation.ts'
import { build } from '../helpers/app.ts'
import { OTHER_PATH_HASH, PATH_HASH, narOf, narinfoFor } from '../helpers/nar-samples.ts'
import { makeGoldenTrees, tempDir } from '../helpers/trees.ts'

const DRV_HASH = 'c27fc07b77aaba90e92d453f6ef6aa7f618e0fc8d258e64119a43d418ac311d4'
const BUILD_ID = `ab${'c'.repeat(38)}`

t.test('HEAD answers on every GET route as GET would, without a body', async (t) => {
  const app = await build(t)
  const nar = await narOf((await makeGoldenTrees(await tempDir(t))).mixed as string)
  const xz = await new Promise<Buffer>((resolve) => lzma.compress(nar.bytes, 1, resolve))
  const uploads: [string, string | Buffer][] = [
    [`/nar/1zd4${'0'.repeat(48)}.nar.xz`, xz],
    [`/${PATH_HASH}.narinfo`, narinfoFor(nar, PATH_HASH)],
    [`/log/${OTHER_PATH_HASH}-x.drv`, 'a build log\n'],
    [`/realisations/sha256:${DRV_HASH}!out.doi`, renderRealisation({ id: { drvHash: DRV_HASH, outputName: 'out' }, outPath: `${PATH_HASH}-sample`, signatures: [], dependentRealisations: {} })],
    [`/build-trace-v2/${OTHER_PATH_HASH}-sample.drv/out.doi`, `{"outPath":"${PATH_HASH}-sample","signatures":[]}`],
    [`/debuginfo/${BUILD_ID}.debug`, `{"archive":"../nar/1zd4${'0'.repeat(48)}.nar.xz","member":"lib/debug/.build-id/ab/${'c'.repeat(38)}.debug"}`],
  ]
  for (const [url, payload] of uploads) {
    const response = await app.inject({ method: 'PUT', url, payload })
    t.ok(response.statusCode < 300, `PUT ${url}: ${response.statusCode} ${response.body}`)
  }
  const present = [
    '/nix-cache-info',
    '/health',
    '/metrics',
    `/${PATH_HASH}.narinfo`,
    `/${PATH_HASH}.ls`,
    `/nar/${nar.hash}.nar`,
    `/nar/${nar.hash}.nar?hash=${nar.hash}`,
    `/nar/1zd4${'0'.repeat(48)}.nar.xz`,
    `/log/${OTHER_PATH_HASH}-x.drv`,
    `/realisations/sha256:${DRV_HASH}!out.doi`,
    `/build-trace-v2/${OTHER_PATH_HASH}-sample.drv/out.doi`,
    `/debuginfo/${BUILD_ID}.debug`,
  ]
  const absent = [
    `/${OTHER_PATH_HASH}.narinfo`,
    `/${OTHER_PATH_HASH}.ls`,
    `/nar/${'1'.repeat(52)}.nar`,
    `/nar/1zd4${'1'.repeat(48)}.nar.zst`,
    `/log/${PATH_HASH}-y.drv`,
    `/realisations/sha256:${DRV_HASH}!dev.doi`,
    `/build-trace-v2/${OTHER_PATH_HASH}-sample.drv/dev.doi`,
    `/debuginfo/${'d'.repeat(40)}.debug`,
  ]
  for (const url of [...present, ...absent]) {
    const get = await app.inject({ url })
    const head = await app.inject({ method: 'HEAD', url })
    t.equal(get.statusCode, present.includes(url) ? 200 : 404, `GET ${url}`)
    t.equal(head.statusCode, get.statusCode, `HEAD ${url}: ${head.statusCode}`)
    t.equal(head.rawPayload.length, 0, `HEAD ${url}: no body`)
    t.equal(head.headers['content-type'], get.headers['content-type'], `HEAD ${url}: the same type`)
  }
})

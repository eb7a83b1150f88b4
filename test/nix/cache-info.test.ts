import t from 'tap'
import { parseCacheInfo, renderCacheInfo } from '../../src/nix/cache-info.ts'

t.test('render and parse nix-cache-info', async (t) => {
  const text = renderCacheInfo({ storeDir: '/nix/store', wantMassQuery: true, priority: 40 })
  t.equal(text, 'StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n')
  t.same(parseCacheInfo(text), { storeDir: '/nix/store', wantMassQuery: true, priority: 40 })
  t.same(parseCacheInfo('StoreDir: /nix/store\n'), { storeDir: '/nix/store', wantMassQuery: false, priority: 50 })
  t.throws(() => parseCacheInfo('Priority: high\n'), { code: 'BAD_CACHE_INFO', message: /line 1/ })
  t.throws(() => parseCacheInfo('StoreDir: relative\n'), { code: 'BAD_CACHE_INFO' })
  t.throws(() => parseCacheInfo('garbage\n'), { code: 'BAD_CACHE_INFO' })
})

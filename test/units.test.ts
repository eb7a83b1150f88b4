import fc from 'fast-check'
import t from 'tap'
import { formatDuration, formatSize, parseDuration, parseSize } from '../src/units.ts'

t.test('durations', async (t) => {
  const cases: [string, number | undefined][] = [
    ['30d', 30 * 86_400_000],
    ['12h', 12 * 3_600_000],
    ['90s', 90_000],
    ['500ms', 500],
    ['5m', 300_000],
    ['1w', 604_800_000],
    ['1h30m', 5_400_000],
    [' 1h 30m ', 5_400_000],
    ['1.5s', 1500],
    ['90', undefined],
    ['', undefined],
    ['1x', undefined],
    ['h', undefined],
    ['1H', undefined],
    ['-5s', undefined],
    ['1h and 2m', undefined],
  ]
  for (const [text, ms] of cases) t.equal(parseDuration(text), ms, JSON.stringify(text))
  t.equal(formatDuration(3_600_000), '1h')
  t.equal(formatDuration(90_000), '90s')
  t.equal(formatDuration(1500), '1500ms')
  t.equal(formatDuration(0), '0')
  fc.assert(fc.property(fc.integer({ min: 1, max: 2 ** 40 }), (ms) => parseDuration(formatDuration(ms)) === ms))
})

t.test('sizes', async (t) => {
  t.equal(parseSize('64MiB'), 64 * 2 ** 20)
  t.equal(parseSize('64 MB'), 64e6)
  t.equal(parseSize('1G'), 2 ** 30)
  t.equal(parseSize('4096'), 4096)
  t.equal(parseSize('lots'), undefined)
  t.equal(formatSize(16 * 2 ** 20), '16MiB')
  t.equal(formatSize(1000), '1000B')
  t.equal(formatSize(0), '0')
  fc.assert(fc.property(fc.integer({ min: 0, max: 2 ** 50 }), (bytes) => parseSize(formatSize(bytes)) === bytes))
})

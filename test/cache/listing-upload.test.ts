import fc from 'fast-check'
import t from 'tap'
import { checkListingUpload } from '../../src/cache/listing-upload.ts'
import { slices } from '../helpers/streams.ts'

async function* stream(text: string, sizes: readonly number[]): AsyncGenerator<Uint8Array> {
  yield* slices(Buffer.from(text), sizes)
}

async function accepted(text: string, sizes: readonly number[] = [65536]): Promise<boolean> {
  try {
    await checkListingUpload(stream(text, sizes))
    return true
  } catch {
    return false
  }
}

/** What the checker must decide, by the book: JSON, an object, version 1 and a root object. */
function oracle(text: string): boolean {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return false
  }
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
  return isObject(value) && value.version === 1 && isObject(value.root)
}

const nixListing = '{"version":1,"root":{"type":"directory","entries":{"bar":{"type":"regular","size":4,"narOffset":232},"ln":{"type":"symlink","target":"bar"}}}}'

t.test('listings as Nix writes them pass, cut anywhere', async (t) => {
  t.ok(await accepted(nixListing))
  t.ok(await accepted(nixListing, [1]))
  t.ok(await accepted(` \n${nixListing.replace(/,/g, ' , ').replace(/:/g, ' :\t')}\r\n`, [3, 1, 7]))
  t.ok(await accepted('{"root":{},"version":1,"other":[1,-2.5e+3,true,false,null,"\\u00e9\\n"]}'))
})

t.test('what is not a listing is refused, naming the byte', async (t) => {
  const cases: [string, RegExp][] = [
    ['', /ends early/],
    ['[]', /not a JSON object/],
    ['{"version":1}', /"root"/],
    ['{"version":2,"root":{}}', /"version" is not 1/],
    ['{"version":"1","root":{}}', /"version" is not 1/],
    ['{"version":1.0,"root":{}}', /"version" is not 1/],
    ['{"version":1,"root":[]}', /"root"/],
    ['{"version":1,"root":{}', /ends early/],
    ['{"version":1,"root":{}}}', /after the end/],
    ['{"version":1,"root":{"a":01}}', /leading zero/],
    ['{"version":1,"root":{"a":"\u0001"}}', /control character/],
    ['{"version":1,"root":{"a":"\\x"}}', /bad escape/],
    ['{"version":1,"root":{"a" 1}}', /expected ":"/],
    ['{"version":1,"root":{"a":tru}}', /expected true/],
    ['{"version":1,"root":{"a":[1,]}}', /expected a value/],
    ['{"version":1,"root":{"a":1,}}', /expected a key/],
    ['{"version":1,"root":{"a":-}}', /bad number/],
  ]
  for (const [text, message] of cases) {
    await t.rejects(checkListingUpload(stream(text, [2])), { code: 'BAD_REQUEST', message }, JSON.stringify(text))
  }
  await t.rejects(checkListingUpload(stream('{"version":1,"root":{"a":1x}}', [100])), { message: /at byte 26/ })
})

t.test('deep nesting is bounded, not recursed', async (t) => {
  const depth = 50_000
  t.ok(await accepted(`{"version":1,"root":{"a":${'['.repeat(depth)}${']'.repeat(depth)}}}`))
  await t.rejects(checkListingUpload(stream(`{"version":1,"root":${'['.repeat(200_000)}`, [4096])), { message: /nesting deeper/ })
})

t.test('agrees with JSON.parse on arbitrary JSON and on damaged listings', async (t) => {
  await t.resolves(fc.assert(
    fc.asyncProperty(fc.json(), fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 4 }), async (json, sizes) => {
      const wrapped = `{"version":1,"root":${json}}`
      return (await accepted(json, sizes)) === oracle(json) && (await accepted(wrapped, sizes)) === oracle(wrapped)
    }),
    { numRuns: 400 },
  ), 'arbitrary JSON, whole and as a root')
  await t.resolves(fc.assert(
    fc.asyncProperty(fc.integer({ min: 0, max: nixListing.length - 1 }), async (cut) => {
      const damaged = nixListing.slice(0, cut) + nixListing.slice(cut + 1)
      return (await accepted(damaged, [5])) === oracle(damaged)
    }),
    { numRuns: nixListing.length * 2 },
  ), 'a listing with one byte gone')
  // White space or a stray byte anywhere: between tokens it is fine, inside one it is not.
  const listingWithNumbers = '{"version":1,"root":{"a":[12,-3.5e+10,true,null,"x\\u00e9"]}}'
  await t.resolves(fc.assert(
    fc.asyncProperty(fc.integer({ min: 0, max: listingWithNumbers.length }), fc.constantFrom(' ', '\n', '\t', '1', '"', '\\', ','), async (at, inserted) => {
      const changed = listingWithNumbers.slice(0, at) + inserted + listingWithNumbers.slice(at)
      return (await accepted(changed, [3])) === oracle(changed)
    }),
    { numRuns: 600 },
  ), 'a listing with one byte more')
})

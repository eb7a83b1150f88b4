/** Runs the benchmarks named on the command line (all when none): npm run bench -- nar */
import { benchCastore } from './castore.ts'
import { benchChunking } from './chunking.ts'
import { benchHttp } from './http.ts'
import { benchNar } from './nar.ts'

const benches: Record<string, () => Promise<void>> = { nar: benchNar, chunking: benchChunking, castore: benchCastore, http: benchHttp, shootout: () => import('./shootout.ts').then((module) => module.benchShootout()) }
benches.codec = () => import('./codec.ts').then((module) => module.benchCodec())
benches.hostile = () => import('./hostile.ts').then((module) => module.benchHostile())
benches.parse = () => import('./ingest-parse.ts').then((module) => module.benchParse())
benches.lifecycle = () => import('./lifecycle.ts').then((module) => module.benchLifecycle())
benches.ingest = () => import('./ingest.ts').then((module) => module.benchIngest())
benches.gc = () => import('./gc.ts').then((module) => module.benchGc())
benches.narinfo = () => import('./narinfo.ts').then((module) => module.benchNarinfo())
benches['pull-through'] = () => import('./pull-through.ts').then((module) => module.benchPullThrough())

const wanted = process.argv.slice(2)
for (const name of wanted.length > 0 ? wanted : Object.keys(benches)) {
  const bench = benches[name]
  if (!bench) throw new Error(`unknown benchmark ${name}; known: ${Object.keys(benches).join(', ')}`)
  console.log(`\n== ${name}`)
  await bench()
}

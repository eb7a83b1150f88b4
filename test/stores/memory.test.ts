import t from 'tap'
import { MemoryStore } from '../../src/stores/memory.ts'
import { conformance } from './conformance.ts'

conformance(t, async () => new MemoryStore('memory'))

import { Writable } from 'node:stream'
import { pino, type Logger } from 'pino'

export interface CapturedLog {
  logger: Logger
  /** Every line logged so far, parsed. */
  lines: () => Record<string, unknown>[]
  /** Every line logged so far as written (JSON.parse would hide a key written twice). */
  text: () => string[]
}

/** A real pino logger whose lines are kept for assertions instead of printed. */
export function captureLogger(): CapturedLog {
  const raw: string[] = []
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      raw.push(chunk.toString())
      done()
    },
  })
  const logger = pino({ level: 'debug' }, sink)
  const text = (): string[] =>
    raw
      .join('')
      .split('\n')
      .filter((line) => line.length > 0)
  return { logger, text, lines: () => text().map((line) => JSON.parse(line) as Record<string, unknown>) }
}

/** The keys of a JSON object's top level, in order and with repeats, as written. */
export function topLevelKeys(json: string): string[] {
  const keys: string[] = []
  let depth = 0
  for (let index = 0; index < json.length; index++) {
    const char = json[index]
    if (char === '{' || char === '[') depth++
    else if (char === '}' || char === ']') depth--
    else if (char === '"') {
      const start = index
      for (index++; json[index] !== '"'; index++) if (json[index] === '\\') index++
      if (depth === 1 && json[index + 1] === ':') keys.push(JSON.parse(json.slice(start, index + 1)) as string)
    }
  }
  return keys
}

export const silentLogger: Logger = pino({ level: 'silent' })

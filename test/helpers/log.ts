import { Writable } from 'node:stream'
import { pino, type Logger } from 'pino'

export interface CapturedLog {
  logger: Logger
  /** Every line logged so far, parsed. */
  lines: () => Record<string, unknown>[]
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
  return {
    logger,
    lines: () =>
      raw
        .join('')
        .split('\n')
        .filter((line) => line.length > 0)
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  }
}

export const silentLogger: Logger = pino({ level: 'silent' })

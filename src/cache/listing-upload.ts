import { NixcasError } from '../errors.ts'

/**
 * Checks an uploaded `.ls` listing as it streams, holding only the nesting stack: nixcas
 * serves listings made from the tree (always in step with the NAR), so an upload is read
 * to tell the client whether it was well-formed and is then dropped. It must be JSON, an
 * object with `"version": 1` and a `"root"` object, as Nix writes
 * (`{"version":1,"root":{…}}`).
 */

/** Deeper than any listing a store path can have (two levels per directory). */
const MAX_DEPTH = 100_000
/** Top-level keys and the version number are captured up to this many characters. */
const CAPTURE = 16

const enum Mode {
  Value,
  ValueOrEnd,
  KeyOrEnd,
  Key,
  Colon,
  AfterValue,
  String,
  Escape,
  Unicode,
  Number,
  Literal,
  End,
}

const enum Num {
  Minus,
  Zero,
  Int,
  Dot,
  Frac,
  Exp,
  ExpSign,
  ExpDigits,
}

const OBJECT = 0
const ARRAY = 1

const isSpace = (byte: number): boolean => byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09
const isDigit = (byte: number): boolean => byte >= 0x30 && byte <= 0x39
const isHex = (byte: number): boolean => isDigit(byte) || (byte >= 0x41 && byte <= 0x46) || (byte >= 0x61 && byte <= 0x66)

class ListingChecker {
  private mode = Mode.Value
  private readonly stack: number[] = []
  private position = 0
  private stringIsKey = false
  private unicodeLeft = 0
  private num = Num.Minus
  private literal = ''
  private literalIndex = 0
  /** Text of a top-level key or of the version value being read; undefined when not captured. */
  private capture: string | undefined
  private topKey: string | undefined
  private topIsObject: boolean | undefined
  private version: string | undefined
  private rootIsObject = false

  private fail(message: string): never {
    throw new NixcasError('BAD_REQUEST', `the uploaded listing is not a NAR listing: ${message} at byte ${this.position}`)
  }

  write(bytes: Uint8Array): void {
    for (let index = 0; index < bytes.length; index++, this.position++) {
      let byte = bytes[index] as number
      // Most bytes are inside strings or white space: skip those without a step each.
      if (this.capture === undefined && (this.mode === Mode.String || (isSpace(byte) && this.mode !== Mode.Number && this.mode !== Mode.Literal && this.mode !== Mode.Escape && this.mode !== Mode.Unicode))) {
        const inString = this.mode === Mode.String
        while ((inString ? byte >= 0x20 && byte !== 0x22 && byte !== 0x5c : isSpace(byte)) && index + 1 < bytes.length) {
          index++
          this.position++
          byte = bytes[index] as number
        }
      }
      // A number or literal ends at the first byte that is not its own: that byte is then read again.
      if (this.mode === Mode.Number && !this.numberByte(byte)) this.endNumber()
      this.step(byte)
    }
  }

  end(): void {
    if (this.mode === Mode.Number) this.endNumber()
    if (this.mode !== Mode.End) this.fail('the JSON ends early')
    if (this.version !== '1') this.fail('"version" is not 1')
    if (!this.rootIsObject) this.fail('"root" is missing or not an object')
  }

  private step(byte: number): void {
    switch (this.mode) {
      case Mode.Value:
      case Mode.ValueOrEnd:
        if (isSpace(byte)) return
        if (this.mode === Mode.ValueOrEnd && byte === 0x5d) return this.close(ARRAY)
        return this.startValue(byte)
      case Mode.KeyOrEnd:
      case Mode.Key:
        if (isSpace(byte)) return
        if (this.mode === Mode.KeyOrEnd && byte === 0x7d) return this.close(OBJECT)
        if (byte !== 0x22) this.fail('expected a key')
        this.stringIsKey = true
        this.capture = this.stack.length === 1 ? '' : undefined
        this.mode = Mode.String
        return
      case Mode.Colon:
        if (isSpace(byte)) return
        if (byte !== 0x3a) this.fail('expected ":"')
        this.mode = Mode.Value
        return
      case Mode.AfterValue: {
        if (isSpace(byte)) return
        const top = this.stack[this.stack.length - 1]
        if (byte === 0x2c) {
          this.mode = top === OBJECT ? Mode.Key : Mode.Value
          return
        }
        if (byte === 0x7d && top === OBJECT) return this.close(OBJECT)
        if (byte === 0x5d && top === ARRAY) return this.close(ARRAY)
        return this.fail('expected "," or the end of the container')
      }
      case Mode.String:
        if (byte === 0x22) return this.endString()
        if (byte === 0x5c) {
          this.mode = Mode.Escape
          return
        }
        if (byte < 0x20) this.fail('a control character in a string')
        this.captureByte(byte)
        return
      case Mode.Escape:
        if (byte === 0x75) {
          this.mode = Mode.Unicode
          this.unicodeLeft = 4
          this.capture = undefined
          return
        }
        // " \ / b f n r t
        if (![0x22, 0x5c, 0x2f, 0x62, 0x66, 0x6e, 0x72, 0x74].includes(byte)) this.fail('a bad escape')
        this.capture = undefined
        this.mode = Mode.String
        return
      case Mode.Unicode:
        if (!isHex(byte)) this.fail('a bad \\u escape')
        if (--this.unicodeLeft === 0) this.mode = Mode.String
        return
      case Mode.Number:
        this.captureByte(byte)
        return
      case Mode.Literal:
        if (byte !== this.literal.charCodeAt(this.literalIndex)) this.fail(`expected ${this.literal}`)
        if (++this.literalIndex === this.literal.length) this.endValue()
        return
      case Mode.End:
        if (!isSpace(byte)) this.fail('bytes after the end of the JSON')
        return
    }
  }

  private startValue(byte: number): void {
    const atTop = this.stack.length === 0
    if (atTop) this.topIsObject = byte === 0x7b
    if (atTop && !this.topIsObject) this.fail('not a JSON object')
    const valueOfTopKey = this.stack.length === 1 ? this.topKey : undefined
    if (valueOfTopKey === 'root') this.rootIsObject = byte === 0x7b
    if (byte === 0x7b || byte === 0x5b) {
      if (this.stack.length >= MAX_DEPTH) this.fail(`nesting deeper than ${MAX_DEPTH}`)
      this.stack.push(byte === 0x7b ? OBJECT : ARRAY)
      this.mode = byte === 0x7b ? Mode.KeyOrEnd : Mode.ValueOrEnd
      return
    }
    this.capture = valueOfTopKey === 'version' ? '' : undefined
    if (byte === 0x22) {
      this.stringIsKey = false
      this.mode = Mode.String
      return
    }
    if (byte === 0x2d || isDigit(byte)) {
      this.num = byte === 0x2d ? Num.Minus : byte === 0x30 ? Num.Zero : Num.Int
      this.mode = Mode.Number
      this.captureByte(byte)
      return
    }
    const literal = byte === 0x74 ? 'true' : byte === 0x66 ? 'false' : byte === 0x6e ? 'null' : undefined
    if (literal === undefined) this.fail('expected a value')
    this.literal = literal
    this.literalIndex = 1
    this.mode = Mode.Literal
  }

  /** Advances the number grammar (-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?); false when `byte` is not part of it. */
  private numberByte(byte: number): boolean {
    const digit = isDigit(byte)
    switch (this.num) {
      case Num.Minus:
        if (!digit) this.fail('a bad number')
        this.num = byte === 0x30 ? Num.Zero : Num.Int
        return true
      case Num.Zero:
      case Num.Int:
        if (digit && this.num === Num.Int) return true
        if (digit) this.fail('a number with a leading zero')
        if (byte === 0x2e) this.num = Num.Dot
        else if (byte === 0x65 || byte === 0x45) this.num = Num.Exp
        else return false
        return true
      case Num.Dot:
        if (!digit) this.fail('a bad number')
        this.num = Num.Frac
        return true
      case Num.Frac:
        if (digit) return true
        if (byte === 0x65 || byte === 0x45) {
          this.num = Num.Exp
          return true
        }
        return false
      case Num.Exp:
        if (byte === 0x2b || byte === 0x2d) this.num = Num.ExpSign
        else if (digit) this.num = Num.ExpDigits
        else this.fail('a bad number')
        return true
      case Num.ExpSign:
        if (!digit) this.fail('a bad number')
        this.num = Num.ExpDigits
        return true
      case Num.ExpDigits:
        return digit
    }
  }

  private endNumber(): void {
    if (this.num !== Num.Zero && this.num !== Num.Int && this.num !== Num.Frac && this.num !== Num.ExpDigits) this.fail('a number ends early')
    this.endValue()
  }

  private captureByte(byte: number): void {
    if (this.capture === undefined) return
    this.capture = this.capture.length < CAPTURE ? this.capture + String.fromCharCode(byte) : undefined
  }

  private endString(): void {
    if (this.stringIsKey) {
      if (this.stack.length === 1) this.topKey = this.capture
      this.mode = Mode.Colon
      return
    }
    this.endValue()
  }

  private endValue(): void {
    if (this.stack.length === 1 && this.topKey === 'version') this.version = this.mode === Mode.Number ? this.capture : undefined
    this.capture = undefined
    this.mode = this.stack.length === 0 ? Mode.End : Mode.AfterValue
  }

  private close(kind: number): void {
    if (this.stack.pop() !== kind) this.fail('a mismatched bracket')
    this.endValue()
  }
}

/** Reads an uploaded listing to its end; throws BAD_REQUEST, naming the byte, when it is not one. */
export async function checkListingUpload(body: AsyncIterable<Uint8Array>): Promise<void> {
  const checker = new ListingChecker()
  for await (const chunk of body) checker.write(chunk)
  checker.end()
}

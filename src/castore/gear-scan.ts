/**
 * The gear hash's inner loop, the hottest code of an ingest, in WebAssembly. Over the doc NAR
 * (113 MB) here it scans in 39 ms where the same loop in JavaScript (`cutPoint`) takes 120 ms:
 * V8 bounds-checks every byte read and keeps less of the loop in registers. Bytes are copied
 * into the module's memory a window at a time (a memcpy, included in the 39 ms) and scanned there.
 */

// The gear table: 256 fixed pseudo-random words from splitmix32 with a fixed seed. Changing
// it changes every cut point, so it is part of the storage format.
export const GEAR = new Int32Array(256)
{
  let state = 0x6e697863 // "nixc"
  for (let index = 0; index < 256; index++) {
    state = (state + 0x9e3779b9) | 0
    let z = state
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
    GEAR[index] = z ^ (z >>> 16)
  }
}

/** Memory: the gear table at 0 (256 little-endian words), the window of bytes from 1024. */
const TABLE_BYTES = 1024
const WINDOW = 256 * 1024
const PAGES = Math.ceil((TABLE_BYTES + WINDOW) / 65536)

/**
 * The module, written out by hand (what `wat2wasm` makes of the text in the comments):
 *
 *   (func (export "scan") (param $i i32) (param $end i32) (param $h i32) (param $mask i32) (result i32)
 *     (block $done
 *       (br_if $done (i32.ge_u $i $end))
 *       (loop $next
 *         (local.set $h (i32.add (i32.shl $h 1) (i32.load (i32.shl (i32.load8_u offset=1024 $i) 2))))
 *         (local.set $i (i32.add $i 1))
 *         (if (i32.eqz (i32.and $h $mask)) (then (global.set $hash $h) (return $i)))
 *         (br_if $next (i32.lt_u $i $end))))
 *     (global.set $hash $h)
 *     (i32.const -1))
 */
// prettier-ignore
const MODULE = Uint8Array.from([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, //  "\0asm", version 1
  0x01, 0x09, 0x01, 0x60, 0x04, 0x7f, 0x7f, 0x7f, 0x7f, 0x01, 0x7f, // types: (i32 i32 i32 i32) -> i32
  0x03, 0x02, 0x01, 0x00, //                          functions: one, of type 0
  0x05, 0x03, 0x01, 0x00, PAGES, //                   memory: PAGES pages, no maximum
  0x06, 0x06, 0x01, 0x7f, 0x01, 0x41, 0x00, 0x0b, //  globals: $hash, mutable i32 = 0
  0x07, 0x18, 0x03, //                                exports: three
  0x06, 0x6d, 0x65, 0x6d, 0x6f, 0x72, 0x79, 0x02, 0x00, // "memory": memory 0
  0x04, 0x68, 0x61, 0x73, 0x68, 0x03, 0x00, //        "hash": global 0
  0x04, 0x73, 0x63, 0x61, 0x6e, 0x00, 0x00, //        "scan": function 0
  0x0a, 0x49, 0x01, 0x47, 0x00, //                    code: one body of 71 bytes, no locals
  0x02, 0x40, //                                      block $done
  0x20, 0x00, 0x20, 0x01, 0x4f, 0x0d, 0x00, //          br_if $done (i32.ge_u $i $end)
  0x03, 0x40, //                                        loop $next
  0x20, 0x02, 0x41, 0x01, 0x74, //                        $h << 1
  0x20, 0x00, 0x2d, 0x00, 0x80, 0x08, //                  i32.load8_u offset=1024 $i
  0x41, 0x02, 0x74, 0x28, 0x02, 0x00, //                  i32.load (byte << 2): GEAR[byte]
  0x6a, 0x21, 0x02, //                                    $h = sum
  0x20, 0x00, 0x41, 0x01, 0x6a, 0x21, 0x00, //            $i = $i + 1
  0x20, 0x02, 0x20, 0x03, 0x71, 0x45, //                  i32.eqz ($h & $mask)
  0x04, 0x40, 0x20, 0x02, 0x24, 0x00, 0x20, 0x00, 0x0f, 0x0b, // if: $hash = $h, return $i
  0x20, 0x00, 0x20, 0x01, 0x49, 0x0d, 0x00, //            br_if $next (i32.lt_u $i $end)
  0x0b, 0x0b, //                                        end loop, end block
  0x20, 0x02, 0x24, 0x00, //                          $hash = $h
  0x41, 0x7f, 0x0b, //                                return -1
])

/** The little of the WebAssembly API used here (the project's lib settings leave it undeclared). */
interface WebAssemblyApi {
  Module: new (bytes: Uint8Array) => object
  Instance: new (module: object) => { exports: unknown }
}
interface GearExports {
  memory: { buffer: ArrayBuffer }
  hash: { value: number }
  scan: (index: number, end: number, hash: number, mask: number) => number
}

// The module reads the table as little-endian words, which a typed array writes only on a little-endian host.
if (new Uint8Array(new Uint32Array([1]).buffer)[0] !== 1) throw new Error('the gear scan needs a little-endian host')
const wasm = (globalThis as unknown as { WebAssembly: WebAssemblyApi }).WebAssembly
const exports = new wasm.Instance(new wasm.Module(MODULE)).exports as GearExports
const memory = new Uint8Array(exports.memory.buffer)
new Int32Array(exports.memory.buffer, 0, 256).set(GEAR)

let lastHash = 0

/** The gear hash after the last byte `gearScan` read: where a scan that found no cut left off. */
export function scannedHash(): number {
  return lastHash
}

/**
 * Rolls the gear hash `hash` over `bytes[from..to)` and stops after the first byte at which
 * `hash & mask` is zero: returns the index after that byte, or -1 if there is none. Either
 * way `scannedHash()` is then the hash after the last byte read. Exactly
 * `hash = ((hash << 1) + GEAR[byte]) | 0` per byte, as in `cutPoint`.
 */
export function gearScan(bytes: Uint8Array, from: number, to: number, hash: number, mask: number): number {
  const { scan } = exports
  for (let start = from; start < to; start += WINDOW) {
    const end = Math.min(to, start + WINDOW)
    memory.set(bytes.subarray(start, end), TABLE_BYTES)
    const cut = scan(0, end - start, hash, mask)
    hash = exports.hash.value
    if (cut >= 0) {
      lastHash = hash
      return start + cut
    }
  }
  lastHash = hash
  return -1
}

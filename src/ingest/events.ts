/**
 * What the CPU-heavy half of an ingest (decode, NAR parse, chunking, hashing) hands to the
 * half that stores things. The producer may run in a worker thread: every field is plain
 * data or bytes that can be transferred.
 *
 * Order: the NAR's nodes depth-first, as in the NAR. A file is `file`, its `chunk`s in
 * order (none for an empty file), then `fileEnd`. A directory is `directory`, its entries,
 * then `end`. The last event is `done`, after the whole NAR was read and checked.
 */
export type IngestEvent =
  | { readonly type: 'directory'; readonly name: Uint8Array | null }
  | { readonly type: 'end' }
  | { readonly type: 'file'; readonly name: Uint8Array | null; readonly executable: boolean; readonly size: number }
  /** A content-defined chunk of the current file; `digest` is BLAKE3 of `bytes`. */
  | { readonly type: 'chunk'; readonly digest: Uint8Array; readonly bytes: Uint8Array }
  /**
   * A chunk of the current file that this NAR already had (same digest, so same bytes and
   * size), sent without its bytes: a NAR that repeats itself (a bomb of zeros, copies of one
   * file) does not move or hold its bytes again.
   */
  | { readonly type: 'repeat'; readonly digest: Uint8Array; readonly size: number }
  /** The current file is complete; `digest` is BLAKE3 of its whole contents. */
  | { readonly type: 'fileEnd'; readonly digest: Uint8Array }
  | { readonly type: 'symlink'; readonly name: Uint8Array | null; readonly target: Uint8Array }
  /** `narHash` is the sha256 of the (decoded) NAR, `narSize` its length. */
  | { readonly type: 'done'; readonly narHash: Uint8Array; readonly narSize: number }

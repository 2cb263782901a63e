/**
 * HPACK (RFC 7541) for rebind's own HTTP/2 transport.
 *
 * The decoder is complete and strict (static + dynamic table, Huffman, size
 * updates bounded by the HEADER_TABLE_SIZE we advertise, a header-list-size
 * bound enforced while decoding). The encoder is deliberately minimal: it
 * emits static-table indexed fields and literals *without indexing*, never
 * Huffman, never touches a dynamic table. An encoded block therefore does not
 * depend on any connection's HPACK state, so one block can be encoded once and
 * written as is on any connection, any number of times (the balancer answers
 * every bind to one replica with the same cached block).
 */

/** A COMPRESSION_ERROR (RFC 9113 §4.3): the connection must end with GOAWAY 0x9. */
export class HpackError extends Error {
  /** HTTP/2 error code COMPRESSION_ERROR. */
  readonly code = 0x9;
  constructor(message: string) {
    super(`hpack: ${message}`);
    this.name = 'HpackError';
  }
}

/** RFC 7541 Appendix A, 1-based (index 0 unused). */
export const STATIC_TABLE: readonly (readonly [string, string])[] = [
  ['', ''],
  [':authority', ''], [':method', 'GET'], [':method', 'POST'], [':path', '/'], [':path', '/index.html'],
  [':scheme', 'http'], [':scheme', 'https'], [':status', '200'], [':status', '204'], [':status', '206'],
  [':status', '304'], [':status', '400'], [':status', '404'], [':status', '500'], ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'], ['accept-language', ''], ['accept-ranges', ''], ['accept', ''],
  ['access-control-allow-origin', ''], ['age', ''], ['allow', ''], ['authorization', ''], ['cache-control', ''],
  ['content-disposition', ''], ['content-encoding', ''], ['content-language', ''], ['content-length', ''],
  ['content-location', ''], ['content-range', ''], ['content-type', ''], ['cookie', ''], ['date', ''],
  ['etag', ''], ['expect', ''], ['expires', ''], ['from', ''], ['host', ''], ['if-match', ''],
  ['if-modified-since', ''], ['if-none-match', ''], ['if-range', ''], ['if-unmodified-since', ''],
  ['last-modified', ''], ['link', ''], ['location', ''], ['max-forwards', ''], ['proxy-authenticate', ''],
  ['proxy-authorization', ''], ['range', ''], ['referer', ''], ['refresh', ''], ['retry-after', ''],
  ['server', ''], ['set-cookie', ''], ['strict-transport-security', ''], ['transfer-encoding', ''],
  ['user-agent', ''], ['vary', ''], ['via', ''], ['www-authenticate', ''],
];
const STATIC_COUNT = STATIC_TABLE.length - 1; // 61

/** RFC 7541 §4.1: an entry's size is name + value octets + 32. */
const ENTRY_OVERHEAD_BYTES = 32;

// ---------------------------------------------------------------------------
// Huffman (RFC 7541 Appendix B). The code is canonical: codes are assigned in
// order of (length, symbol), so the code lengths alone define it.
// prettier-ignore
const HUFFMAN_CODE_BITS: readonly number[] = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,
  28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,
  5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
  7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,
  6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
  24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
  21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
  19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
  26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
  30, // EOS (256)
];
const EOS = 256;

/** Canonical code values, for tests and for building the decoder. */
export const HUFFMAN_CODES: readonly number[] = (() => {
  const order = HUFFMAN_CODE_BITS.map((bits, sym) => ({ bits, sym })).sort((a, b) => a.bits - b.bits || a.sym - b.sym);
  const codes = new Array<number>(257).fill(0);
  let code = 0;
  let prevBits = order[0]!.bits;
  for (let i = 0; i < order.length; i++) {
    const { bits, sym } = order[i]!;
    if (i > 0) code = (code + 1) * 2 ** (bits - prevBits);
    prevBits = bits;
    codes[sym] = code;
  }
  return codes;
})();

/*
 * Table-driven decoder, 4 bits at a time: a state is an internal node of the
 * code tree (256 of them); for each state and nibble the table gives the next
 * state and at most one emitted symbol (the shortest code is 5 bits). A state
 * "accepts" end of input when the path from the root to it is all ones and at
 * most 7 bits long (valid EOS-prefix padding, §5.2).
 * Entry layout: bits 0-8 next state, bits 9-16 symbol, bit 17 emit, bit 18 fail.
 */
const HUFF_EMIT = 1 << 17;
const HUFF_FAIL = 1 << 18;
const { HUFF_TABLE, HUFF_ACCEPT } = (() => {
  // Build the tree: children arrays; leaves encoded as -(sym + 1).
  const left: number[] = [0];
  const right: number[] = [0];
  const depth: number[] = [0];
  const allOnes: boolean[] = [true];
  left.length = 0; right.length = 0; depth.length = 0; allOnes.length = 0;
  const newNode = (d: number, ones: boolean): number => {
    left.push(0); right.push(0); depth.push(d); allOnes.push(ones);
    return left.length - 1;
  };
  newNode(0, true);
  for (let sym = 0; sym <= EOS; sym++) {
    const bits = HUFFMAN_CODE_BITS[sym]!;
    const code = HUFFMAN_CODES[sym]!;
    let node = 0;
    for (let b = bits - 1; b >= 0; b--) {
      const bit = Math.floor(code / 2 ** b) % 2;
      const kids = bit ? right : left;
      if (b === 0) {
        kids[node] = -(sym + 1);
      } else {
        let next = kids[node]!;
        if (next === 0) {
          next = newNode(depth[node]! + 1, allOnes[node]! && bit === 1);
          kids[node] = next;
        }
        node = next;
      }
    }
  }
  const states = left.length; // 256
  const table = new Int32Array(states * 16);
  const accept = new Uint8Array(states);
  for (let s = 0; s < states; s++) {
    accept[s] = allOnes[s]! && depth[s]! <= 7 ? 1 : 0;
    for (let nib = 0; nib < 16; nib++) {
      let node = s;
      let entry = 0;
      for (let b = 3; b >= 0; b--) {
        const bit = (nib >> b) & 1;
        const next = bit ? right[node]! : left[node]!;
        if (next < 0) {
          const sym = -next - 1;
          if (sym === EOS) { entry |= HUFF_FAIL; break; }
          entry |= HUFF_EMIT | (sym << 9);
          node = 0;
        } else {
          node = next;
        }
      }
      table[s * 16 + nib] = entry | (entry & HUFF_FAIL ? 0 : node);
    }
  }
  return { HUFF_TABLE: table, HUFF_ACCEPT: accept };
})();

let huffScratch = Buffer.allocUnsafe(4096);

/**
 * Decodes a Huffman-coded string (bytes `buf[start, end)`) to a latin1 string.
 * Throws HpackError on EOS in the data or invalid padding.
 */
export function huffmanDecode(buf: Buffer, start: number, end: number): string {
  // Each input byte yields at most 8/5 symbols: at most 2 per byte.
  const max = (end - start) * 2;
  if (huffScratch.length < max) huffScratch = Buffer.allocUnsafe(Math.max(max, huffScratch.length * 2));
  const out = huffScratch;
  let n = 0;
  let state = 0;
  for (let i = start; i < end; i++) {
    const byte = buf[i]!;
    let e = HUFF_TABLE[state * 16 + (byte >> 4)]!;
    if (e & HUFF_FAIL) throw new HpackError('EOS symbol in Huffman data');
    if (e & HUFF_EMIT) out[n++] = (e >> 9) & 0xff;
    state = e & 0x1ff;
    e = HUFF_TABLE[state * 16 + (byte & 0xf)]!;
    if (e & HUFF_FAIL) throw new HpackError('EOS symbol in Huffman data');
    if (e & HUFF_EMIT) out[n++] = (e >> 9) & 0xff;
    state = e & 0x1ff;
  }
  if (HUFF_ACCEPT[state] !== 1) throw new HpackError('invalid Huffman padding');
  return out.toString('latin1', 0, n);
}

/** Huffman encoding, for tests (the encoder below never uses Huffman). */
export function huffmanEncode(s: string): Buffer {
  const bytes = Buffer.from(s, 'latin1');
  const out: number[] = [];
  let acc = 0;
  let accBits = 0;
  for (const b of bytes) {
    const bits = HUFFMAN_CODE_BITS[b]!;
    const code = HUFFMAN_CODES[b]!;
    for (let k = bits - 1; k >= 0; k--) {
      acc = (acc << 1) | (Math.floor(code / 2 ** k) % 2);
      if (++accBits === 8) { out.push(acc); acc = 0; accBits = 0; }
    }
  }
  if (accBits > 0) out.push(((acc << (8 - accBits)) | ((1 << (8 - accBits)) - 1)) & 0xff);
  return Buffer.from(out);
}

// ---------------------------------------------------------------------------

/** Integer value bound: HPACK integers above this are refused (no sane field needs more). */
const MAX_HPACK_INT = 0x7fffffff;

/** Default bound of the decoder's dynamic table (RFC 9113 initial SETTINGS_HEADER_TABLE_SIZE). */
export const DEFAULT_HEADER_TABLE_SIZE_BYTES = 4096;
/** Default header list size bound (RFC 9113 §6.5.2 accounting: name + value + 32 per field). */
export const DEFAULT_MAX_HEADER_LIST_SIZE_BYTES = 16384;

/**
 * HPACK decoder for one connection's request direction.
 *
 * `decode()` appends `name, value` pairs to a flat array. When the decoded list
 * would exceed `maxHeaderListSizeBytes`, it stops materialising fields (literal
 * values that do not enter the dynamic table are skipped undecoded) but keeps
 * parsing so the dynamic table stays in sync, and returns false: the caller
 * refuses that one stream and the connection goes on.
 */
export class HpackDecoder {
  private names: string[] = [];
  private values: string[] = [];
  /** Index in names/values of the oldest live entry (entries are appended, evicted from the front). */
  private head = 0;
  private tableSize = 0;
  private tableLimit: number;
  /** The SETTINGS_HEADER_TABLE_SIZE we advertise: a size update may not exceed it. */
  private readonly maxTableSizeBytes: number;
  private readonly maxHeaderListSizeBytes: number;
  /** Size of the list decoded by the last decode() (RFC accounting), whether or not it was kept. */
  lastListSizeBytes = 0;

  constructor(maxTableSizeBytes = DEFAULT_HEADER_TABLE_SIZE_BYTES, maxHeaderListSizeBytes = DEFAULT_MAX_HEADER_LIST_SIZE_BYTES) {
    this.maxTableSizeBytes = maxTableSizeBytes;
    this.tableLimit = maxTableSizeBytes;
    this.maxHeaderListSizeBytes = maxHeaderListSizeBytes;
  }

  /** Number of entries in the dynamic table (tests). */
  get dynamicTableLength(): number {
    return this.names.length - this.head;
  }

  /** Current dynamic table size in bytes (RFC accounting). */
  get dynamicTableSizeBytes(): number {
    return this.tableSize;
  }

  /** Entry `i` (1-based, newest first) of the dynamic table (tests). */
  dynamicEntry(i: number): [string, string] | undefined {
    const k = this.names.length - i;
    if (i < 1 || k < this.head) return undefined;
    return [this.names[k]!, this.values[k]!];
  }

  /**
   * Decodes one complete header block into `out` (flat `name, value, ...`).
   * Returns false when the header list exceeded the bound (out then holds a prefix).
   * @throws HpackError on any malformed input (connection error COMPRESSION_ERROR).
   */
  decode(block: Buffer, out: string[]): boolean {
    let pos = 0;
    const end = block.length;
    let listSize = 0;
    let keep = true;
    let fieldsSeen = false;
    while (pos < end) {
      const b = block[pos]!;
      let name: string;
      let value: string;
      if (b & 0x80) {
        // Indexed field (§6.1).
        const idx = this.readInt(block, pos, 7);
        pos = this.intEnd;
        if (idx === 0) throw new HpackError('index 0');
        if (idx <= STATIC_COUNT) {
          const e = STATIC_TABLE[idx]!;
          name = e[0];
          value = e[1];
        } else {
          const k = this.names.length - (idx - STATIC_COUNT);
          if (k < this.head) throw new HpackError(`index ${idx} beyond the table`);
          name = this.names[k]!;
          value = this.values[k]!;
        }
        fieldsSeen = true;
      } else if ((b & 0xe0) === 0x20) {
        // Dynamic table size update (§6.3): only at the start of a block.
        if (fieldsSeen) throw new HpackError('table size update after a field');
        const size = this.readInt(block, pos, 5);
        pos = this.intEnd;
        if (size > this.maxTableSizeBytes) throw new HpackError(`table size update ${size} above ${this.maxTableSizeBytes}`);
        this.tableLimit = size;
        this.evictTo(size);
        continue;
      } else {
        // Literal: with incremental indexing (01), without (0000) or never indexed (0001).
        const indexing = (b & 0xc0) === 0x40;
        const prefix = indexing ? 6 : 4;
        const idx = this.readInt(block, pos, prefix);
        pos = this.intEnd;
        if (idx === 0) {
          name = this.readString(block, pos, end, true);
          pos = this.strEnd;
        } else if (idx <= STATIC_COUNT) {
          name = STATIC_TABLE[idx]![0];
        } else {
          const k = this.names.length - (idx - STATIC_COUNT);
          if (k < this.head) throw new HpackError(`name index ${idx} beyond the table`);
          name = this.names[k]!;
        }
        // Once over the bound, values that need not enter the table are skipped undecoded.
        value = this.readString(block, pos, end, keep || indexing);
        pos = this.strEnd;
        if (indexing) this.insert(name, value);
        fieldsSeen = true;
        if (!keep) {
          listSize += name.length + this.strLen + ENTRY_OVERHEAD_BYTES;
          continue;
        }
      }
      listSize += name.length + value.length + ENTRY_OVERHEAD_BYTES;
      if (keep) {
        if (listSize > this.maxHeaderListSizeBytes) keep = false;
        else out.push(name, value);
      }
    }
    this.lastListSizeBytes = listSize;
    return keep;
  }

  /** End offset of the last readInt (avoids allocating a result pair). */
  private intEnd = 0;
  private strEnd = 0;
  private strLen = 0;

  private readInt(buf: Buffer, pos: number, prefixBits: number): number {
    const mask = (1 << prefixBits) - 1;
    let v = buf[pos]! & mask;
    pos++;
    if (v < mask) {
      this.intEnd = pos;
      return v;
    }
    let shift = 0;
    for (;;) {
      if (pos >= buf.length) throw new HpackError('truncated integer');
      const c = buf[pos++]!;
      v += (c & 0x7f) * 2 ** shift;
      if (v > MAX_HPACK_INT) throw new HpackError('integer overflow');
      if ((c & 0x80) === 0) break;
      shift += 7;
      if (shift > 28) throw new HpackError('integer overflow');
    }
    this.intEnd = pos;
    return v;
  }

  private readString(buf: Buffer, pos: number, end: number, decodeIt: boolean): string {
    if (pos >= end) throw new HpackError('truncated string');
    const huffman = (buf[pos]! & 0x80) !== 0;
    const len = this.readInt(buf, pos, 7);
    pos = this.intEnd;
    if (pos + len > end) throw new HpackError('truncated string');
    this.strEnd = pos + len;
    this.strLen = len;
    if (!decodeIt) return '';
    if (huffman) return huffmanDecode(buf, pos, pos + len);
    return buf.toString('latin1', pos, pos + len);
  }

  private insert(name: string, value: string): void {
    const size = name.length + value.length + ENTRY_OVERHEAD_BYTES;
    if (size > this.tableLimit) {
      // §4.4: an entry larger than the table empties it and is not added.
      this.evictTo(0);
      return;
    }
    this.evictTo(this.tableLimit - size);
    this.names.push(name);
    this.values.push(value);
    this.tableSize += size;
  }

  private evictTo(limit: number): void {
    while (this.tableSize > limit && this.head < this.names.length) {
      this.tableSize -= this.names[this.head]!.length + this.values[this.head]!.length + ENTRY_OVERHEAD_BYTES;
      this.head++;
    }
    // Compact now and then so evicted strings can be collected; amortised O(1).
    if (this.head > 32 && this.head * 2 > this.names.length) {
      this.names = this.names.slice(this.head);
      this.values = this.values.slice(this.head);
      this.head = 0;
    }
  }
}

// ---------------------------------------------------------------------------

/** Header input accepted by the encoder: an object (array values repeat the field) or a flat/pair list. */
export type HeadersInit = Readonly<Record<string, string | number | readonly string[] | undefined>> | readonly (readonly [string, string])[];

/** Static entries with a value, by name then value (:method, :path, :scheme, :status, accept-encoding). */
const STATIC_NAME_VALUE = new Map<string, Map<string, number>>();
/** First static entry of each name. */
const STATIC_NAME = new Map<string, number>();
for (let i = STATIC_COUNT; i >= 1; i--) {
  const [n, v] = STATIC_TABLE[i]!;
  STATIC_NAME.set(n, i);
  if (v !== '') {
    let m = STATIC_NAME_VALUE.get(n);
    if (m === undefined) STATIC_NAME_VALUE.set(n, (m = new Map()));
    m.set(v, i);
  }
}

// The encoder writes into one scratch buffer and copies the result out: no per-field allocation.
let encBuf = Buffer.allocUnsafe(4096);
let encPos = 0;

function encEnsure(n: number): void {
  if (encPos + n <= encBuf.length) return;
  const b = Buffer.allocUnsafe(Math.max(encBuf.length * 2, encPos + n));
  encBuf.copy(b, 0, 0, encPos);
  encBuf = b;
}

function encInt(prefixByte: number, prefixBits: number, v: number): void {
  encEnsure(8);
  const mask = (1 << prefixBits) - 1;
  if (v < mask) {
    encBuf[encPos++] = prefixByte | v;
    return;
  }
  encBuf[encPos++] = prefixByte | mask;
  v -= mask;
  while (v >= 128) {
    encBuf[encPos++] = (v % 128) | 0x80;
    v = Math.floor(v / 128);
  }
  encBuf[encPos++] = v;
}

/** A raw (non-Huffman) string literal; `lower` folds A-Z (names). */
function encStr(s: string, lower: boolean): void {
  const n = s.length;
  encInt(0, 7, n);
  encEnsure(n);
  const b = encBuf;
  let p = encPos;
  for (let k = 0; k < n; k++) {
    let c = s.charCodeAt(k);
    if (c > 0xff) throw new TypeError(`header text must be latin1: ${JSON.stringify(s)}`);
    if (lower && c >= 65 && c <= 90) c += 32;
    b[p++] = c;
  }
  encPos = p;
}

function encField(rawName: string, value: string): void {
  let name = rawName;
  let idx = STATIC_NAME.get(name);
  if (idx === undefined) {
    // Upper-case input is folded (HTTP/2 names are lower case); rare, so only looked at on a miss.
    const lower = name.toLowerCase();
    if (lower !== name) {
      name = lower;
      idx = STATIC_NAME.get(name);
    }
  }
  if (idx !== undefined) {
    const full = STATIC_NAME_VALUE.get(name)?.get(value);
    if (full !== undefined) {
      encInt(0x80, 7, full);
      return;
    }
    encInt(0x00, 4, idx);
  } else {
    encEnsure(1);
    encBuf[encPos++] = 0x00;
    encStr(name, false);
  }
  encStr(value, false);
}

/**
 * Stateless HPACK encoder: static-table indexed fields, literals without
 * indexing, no Huffman, no dynamic table. Its output is valid on any
 * connection whatever the peer's table state, so it may be cached.
 */
export class HpackEncoder {
  /** Encodes a header list (names are lower-cased; in an object, pseudo-headers go first). */
  static encode(headers: HeadersInit): Buffer {
    encPos = 0;
    if (Array.isArray(headers)) {
      for (const [n, v] of headers as readonly (readonly [string, string])[]) encField(n, v);
    } else {
      const rec = headers as Readonly<Record<string, string | number | readonly string[] | undefined>>;
      // Pseudo-headers first (RFC 9113 §8.3).
      for (let pass = 0; pass < 2; pass++) {
        for (const n in rec) {
          if ((n.charCodeAt(0) === 58) !== (pass === 0)) continue;
          const v = rec[n];
          if (v === undefined) continue;
          if (typeof v === 'string') encField(n, v);
          else if (typeof v === 'number') encField(n, String(v));
          else for (const x of v as readonly string[]) encField(n, x);
        }
      }
    }
    const out = Buffer.allocUnsafe(encPos);
    encBuf.copy(out, 0, 0, encPos);
    return out;
  }

  /** Encodes a flat `name, value, …` list (as decoded, pseudo-headers first): no pair arrays to build. */
  static encodeFlat(list: readonly string[]): Buffer {
    encPos = 0;
    for (let i = 0; i + 1 < list.length; i += 2) encField(list[i]!, list[i + 1]!);
    const out = Buffer.allocUnsafe(encPos);
    encBuf.copy(out, 0, 0, encPos);
    return out;
  }
}

/**
 * HTTP/2 framing (RFC 9113 §4, §6): constants, an incremental frame reader
 * over arbitrary socket chunks, and frame writers.
 */

/** Frame types (RFC 9113 §6). */
export const FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

/** Frame flags. */
export const Flag = {
  END_STREAM: 0x1,
  ACK: 0x1,
  END_HEADERS: 0x4,
  PADDED: 0x8,
  PRIORITY: 0x20,
} as const;

/** Error codes (RFC 9113 §7). */
export const ErrorCode = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  SETTINGS_TIMEOUT: 0x4,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  CONNECT_ERROR: 0xa,
  ENHANCE_YOUR_CALM: 0xb,
  INADEQUATE_SECURITY: 0xc,
  HTTP_1_1_REQUIRED: 0xd,
} as const;

/** SETTINGS identifiers (RFC 9113 §6.5.2). */
export const SettingId = {
  HEADER_TABLE_SIZE: 0x1,
  ENABLE_PUSH: 0x2,
  MAX_CONCURRENT_STREAMS: 0x3,
  INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5,
  MAX_HEADER_LIST_SIZE: 0x6,
} as const;

/** The client connection preface (RFC 9113 §3.4). */
export const CLIENT_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/** Frame header length. */
export const FRAME_HEADER_BYTES = 9;

/** Never mutated: the source of {@link youngList}'s copies. */
const NO_ITEMS: unknown[] = [];

/**
 * A new empty array that V8 always allocates in the young generation.
 *
 * An array literal (`[]`) is an allocation site, and V8 pretenures a site
 * whose arrays mostly outlive young-generation collections: from then on
 * every array it makes is born in the old generation. The transport's lists
 * are made at sites shared by long-lived and short-lived users (a Control
 * stream's header list lives as long as its replica; a bind's for a few
 * microseconds), so a balancer with many replicas attached gets those sites
 * pretenured. A short-lived list born old is reclaimed only by a full
 * mark-compact, and until then each young object it held (decoded header
 * strings, queued output buffers) is kept alive through the old-to-new
 * remembered set: it survives every scavenge and is promoted. Measured on
 * bench:scale (1,000 replicas, 10,000 binds/s): ~550 bytes per bind
 * promoted, 8-15 ms scavenges every half second, bind p99 13-36 ms; with
 * pretenuring off, ~100 bytes and 5 ms. `slice()` copies through a builtin
 * that has no allocation site, so these lists are always born young and die
 * young.
 */
export function youngList<T>(): T[] {
  return NO_ITEMS.slice() as T[];
}
/** RFC 9113 initial and minimum SETTINGS_MAX_FRAME_SIZE. */
export const MIN_MAX_FRAME_SIZE_BYTES = 16384;
/** Largest allowed SETTINGS_MAX_FRAME_SIZE. */
export const MAX_MAX_FRAME_SIZE_BYTES = 16777215;
/** Largest flow-control window (2^31 - 1). */
export const MAX_WINDOW_BYTES = 0x7fffffff;
/** RFC 9113 initial window size. */
export const DEFAULT_WINDOW_BYTES = 65535;

/** A connection error raised by the reader (the caller sends GOAWAY with `code`). */
export class H2ConnectionError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
    this.name = 'H2ConnectionError';
  }
}

/** Receives whole frames from a FrameReader. `payload` may be a view of a socket chunk. */
export interface FrameSink {
  onFrame(type: number, flags: number, streamId: number, payload: Buffer): void;
}

/**
 * Incremental frame reader. `push(chunk)` parses every complete frame in the
 * chunk (plus bytes carried over from earlier chunks) and hands each to the
 * sink. A frame that lies inside one chunk is passed as a subarray (no copy);
 * only frames spanning chunks are assembled into a new buffer. A frame longer
 * than `maxFrameSizeBytes` is a FRAME_SIZE_ERROR before any of it is buffered.
 */
export class FrameReader {
  /** A frame header split across chunks (allocated on first need: most connections never split one). */
  private hdr: Buffer | null = null;
  private hdrFill = 0;
  private partial: Buffer | null = null;
  private partialFill = 0;
  private pType = 0;
  private pFlags = 0;
  private pStream = 0;
  /** Set by the sink to stop parsing the rest of the chunk (connection ended). */
  stopped = false;

  constructor(
    private readonly sink: FrameSink,
    /** The SETTINGS_MAX_FRAME_SIZE we advertise. */
    public maxFrameSizeBytes: number = MIN_MAX_FRAME_SIZE_BYTES,
  ) {}

  /** Parses a chunk. @throws H2ConnectionError (FRAME_SIZE_ERROR) */
  push(chunk: Buffer): void {
    let off = 0;
    const n = chunk.length;
    // Finish a partial payload.
    if (this.partial !== null) {
      const want = this.partial.length - this.partialFill;
      const take = want < n ? want : n;
      chunk.copy(this.partial, this.partialFill, 0, take);
      this.partialFill += take;
      off = take;
      if (this.partialFill < this.partial.length) return;
      const p = this.partial;
      this.partial = null;
      this.sink.onFrame(this.pType, this.pFlags, this.pStream, p);
      if (this.stopped) return;
    }
    // Finish a partial header.
    if (this.hdrFill > 0) {
      const want = FRAME_HEADER_BYTES - this.hdrFill;
      const take = want < n - off ? want : n - off;
      const h = this.hdr!;
      chunk.copy(h, this.hdrFill, off, off + take);
      this.hdrFill += take;
      off += take;
      if (this.hdrFill < FRAME_HEADER_BYTES) return;
      this.hdrFill = 0;
      const len = (h[0]! << 16) | (h[1]! << 8) | h[2]!;
      const type = h[3]!;
      const flags = h[4]!;
      const sid = h.readUInt32BE(5) & 0x7fffffff;
      if (len > this.maxFrameSizeBytes) throw new H2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, `frame of ${len} bytes above ${this.maxFrameSizeBytes}`);
      if (off + len <= n) {
        this.sink.onFrame(type, flags, sid, chunk.subarray(off, off + len));
        off += len;
        if (this.stopped) return;
      } else {
        this.startPartial(chunk, off, len, type, flags, sid);
        return;
      }
    }
    while (n - off >= FRAME_HEADER_BYTES) {
      const len = (chunk[off]! << 16) | (chunk[off + 1]! << 8) | chunk[off + 2]!;
      const type = chunk[off + 3]!;
      const flags = chunk[off + 4]!;
      const sid = chunk.readUInt32BE(off + 5) & 0x7fffffff;
      if (len > this.maxFrameSizeBytes) throw new H2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, `frame of ${len} bytes above ${this.maxFrameSizeBytes}`);
      off += FRAME_HEADER_BYTES;
      if (off + len > n) {
        this.startPartial(chunk, off, len, type, flags, sid);
        return;
      }
      this.sink.onFrame(type, flags, sid, chunk.subarray(off, off + len));
      off += len;
      if (this.stopped) return;
    }
    if (off < n) {
      if (this.hdr === null) this.hdr = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
      chunk.copy(this.hdr, 0, off, n);
      this.hdrFill = n - off;
    }
  }

  private startPartial(chunk: Buffer, off: number, len: number, type: number, flags: number, sid: number): void {
    this.partial = Buffer.allocUnsafe(len);
    this.partialFill = chunk.copy(this.partial, 0, off, chunk.length);
    this.pType = type;
    this.pFlags = flags;
    this.pStream = sid;
  }

  /** Bytes held for an incomplete frame (tests, stats). */
  get bufferedBytes(): number {
    return this.hdrFill + (this.partial === null ? 0 : this.partialFill);
  }
}

/** Writes a 9-byte frame header at `off`. */
export function writeFrameHeader(buf: Buffer, off: number, length: number, type: number, flags: number, streamId: number): void {
  buf[off] = (length >>> 16) & 0xff;
  buf[off + 1] = (length >>> 8) & 0xff;
  buf[off + 2] = length & 0xff;
  buf[off + 3] = type;
  buf[off + 4] = flags;
  buf.writeUInt32BE(streamId >>> 0, off + 5);
}

/** A whole frame with the given payload (copied). */
export function frame(type: number, flags: number, streamId: number, payload?: Buffer | Uint8Array): Buffer {
  const len = payload === undefined ? 0 : payload.length;
  const b = Buffer.allocUnsafe(FRAME_HEADER_BYTES + len);
  writeFrameHeader(b, 0, len, type, flags, streamId);
  if (payload !== undefined && len > 0) b.set(payload, FRAME_HEADER_BYTES);
  return b;
}

/** A SETTINGS frame from [id, value] pairs. */
export function settingsFrame(settings: readonly (readonly [number, number])[]): Buffer {
  const b = Buffer.allocUnsafe(FRAME_HEADER_BYTES + settings.length * 6);
  writeFrameHeader(b, 0, settings.length * 6, FrameType.SETTINGS, 0, 0);
  let off = FRAME_HEADER_BYTES;
  for (const [id, v] of settings) {
    b.writeUInt16BE(id, off);
    b.writeUInt32BE(v >>> 0, off + 2);
    off += 6;
  }
  return b;
}

/** SETTINGS with ACK (constant: reusable). */
export const SETTINGS_ACK_FRAME = frame(FrameType.SETTINGS, Flag.ACK, 0);

/** A WINDOW_UPDATE frame. */
export function windowUpdateFrame(streamId: number, increment: number): Buffer {
  const b = Buffer.allocUnsafe(FRAME_HEADER_BYTES + 4);
  writeFrameHeader(b, 0, 4, FrameType.WINDOW_UPDATE, 0, streamId);
  b.writeUInt32BE(increment >>> 0, FRAME_HEADER_BYTES);
  return b;
}

/** A RST_STREAM frame. */
export function rstStreamFrame(streamId: number, code: number): Buffer {
  const b = Buffer.allocUnsafe(FRAME_HEADER_BYTES + 4);
  writeFrameHeader(b, 0, 4, FrameType.RST_STREAM, 0, streamId);
  b.writeUInt32BE(code >>> 0, FRAME_HEADER_BYTES);
  return b;
}

/** A GOAWAY frame. */
export function goawayFrame(lastStreamId: number, code: number, debug?: string): Buffer {
  const d = debug === undefined ? null : Buffer.from(debug, 'utf8');
  const len = 8 + (d === null ? 0 : d.length);
  const b = Buffer.allocUnsafe(FRAME_HEADER_BYTES + len);
  writeFrameHeader(b, 0, len, FrameType.GOAWAY, 0, 0);
  b.writeUInt32BE(lastStreamId >>> 0, FRAME_HEADER_BYTES);
  b.writeUInt32BE(code >>> 0, FRAME_HEADER_BYTES + 4);
  if (d !== null) d.copy(b, FRAME_HEADER_BYTES + 8);
  return b;
}

/** A PING ACK echoing `payload` (8 bytes). */
export function pingAckFrame(payload: Buffer): Buffer {
  const b = Buffer.allocUnsafe(FRAME_HEADER_BYTES + 8);
  writeFrameHeader(b, 0, 8, FrameType.PING, Flag.ACK, 0);
  payload.copy(b, FRAME_HEADER_BYTES, 0, 8);
  return b;
}

/**
 * HEADERS (+ CONTINUATION when the block exceeds `maxFrameSizeBytes`) for a
 * header block, as one buffer.
 */
export function headersFrames(streamId: number, block: Buffer, endStream: boolean, maxFrameSizeBytes: number): Buffer {
  const es = endStream ? Flag.END_STREAM : 0;
  if (block.length <= maxFrameSizeBytes) {
    const b = Buffer.allocUnsafe(FRAME_HEADER_BYTES + block.length);
    writeFrameHeader(b, 0, block.length, FrameType.HEADERS, es | Flag.END_HEADERS, streamId);
    block.copy(b, FRAME_HEADER_BYTES);
    return b;
  }
  const count = Math.ceil(block.length / maxFrameSizeBytes);
  const b = Buffer.allocUnsafe(count * FRAME_HEADER_BYTES + block.length);
  let off = 0;
  for (let i = 0, pos = 0; i < count; i++, pos += maxFrameSizeBytes) {
    const len = Math.min(maxFrameSizeBytes, block.length - pos);
    const type = i === 0 ? FrameType.HEADERS : FrameType.CONTINUATION;
    const flags = (i === 0 ? es : 0) | (i === count - 1 ? Flag.END_HEADERS : 0);
    writeFrameHeader(b, off, len, type, flags, streamId);
    block.copy(b, off + FRAME_HEADER_BYTES, pos, pos + len);
    off += FRAME_HEADER_BYTES + len;
  }
  return b;
}

// ---------------------------------------------------------------------------
// Input helpers shared by the server's and the client's connections

/** The data of a DATA frame's payload without its padding. @throws H2ConnectionError (PROTOCOL_ERROR) */
export function dataOf(flags: number, p: Buffer): Buffer {
  if ((flags & Flag.PADDED) === 0) return p;
  if (p.length === 0) throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'padded DATA without pad length');
  const pad = p[0]!;
  if (pad >= p.length) throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'padding exceeds DATA');
  return p.subarray(1, p.length - pad);
}

/** Counts events in fixed windows: `hit()` is true once more than `limit` fell in the current one. */
export class RateWindow {
  private start = 0;
  private count = 0;

  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
  ) {}

  hit(): boolean {
    const now = Date.now();
    if (now - this.start > this.windowMs) {
      this.start = now;
      this.count = 0;
    }
    return ++this.count > this.limit;
  }
}

/**
 * Assembles header blocks across HEADERS + CONTINUATION frames, bounded in
 * CONTINUATION frames and bytes per block (the CONTINUATION flood): beyond
 * either, `onFlood` is called and a connection error ENHANCE_YOUR_CALM thrown.
 */
export class HeaderBlockAssembler {
  /** Stream of the block in progress (0: none; then only CONTINUATION may follow). */
  stream = 0;
  /** END_STREAM of the HEADERS frame that started the block in progress. */
  endStream = false;
  private frags: Buffer[] = youngList();
  private bytes = 0;
  private count = 0;

  constructor(
    private readonly maxContinuationFrames: number,
    private readonly maxHeaderBlockBytes: number,
    private readonly onFlood: () => void,
    /** A zero-length CONTINUATION without END_HEADERS (counted against the empty-frame bound). */
    private readonly onEmpty: () => void,
  ) {}

  /** The header block fragment of a HEADERS payload (padding and priority removed). @throws H2ConnectionError */
  static fragment(flags: number, p: Buffer): Buffer {
    let off = 0;
    let end = p.length;
    if ((flags & Flag.PADDED) !== 0) {
      if (p.length < 1) throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'padded HEADERS without pad length');
      end -= p[0]!;
      off = 1;
    }
    if ((flags & Flag.PRIORITY) !== 0) off += 5;
    if (off > end) throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'HEADERS padding/priority exceeds the frame');
    return p.subarray(off, end);
  }

  /** A HEADERS frame without END_HEADERS: starts a block (the fragment is copied). */
  start(sid: number, frag: Buffer, endStream: boolean): void {
    if (frag.length > this.maxHeaderBlockBytes) {
      this.onFlood();
      throw new H2ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, 'header block too large');
    }
    this.stream = sid;
    this.frags = [Buffer.from(frag)];
    this.bytes = frag.length;
    this.count = 0;
    this.endStream = endStream;
  }

  /** A CONTINUATION frame: the whole block at END_HEADERS, else null. @throws H2ConnectionError */
  continuation(flags: number, sid: number, p: Buffer): Buffer | null {
    if (this.stream === 0 || sid !== this.stream) throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'unexpected CONTINUATION');
    this.bytes += p.length;
    if (++this.count > this.maxContinuationFrames || this.bytes > this.maxHeaderBlockBytes) {
      this.onFlood();
      throw new H2ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, 'too many CONTINUATION frames');
    }
    const endHeaders = (flags & Flag.END_HEADERS) !== 0;
    if (p.length === 0 && !endHeaders) this.onEmpty();
    this.frags.push(Buffer.from(p));
    if (!endHeaders) return null;
    const block = Buffer.concat(this.frags, this.bytes);
    this.frags = youngList();
    this.stream = 0;
    return block;
  }
}

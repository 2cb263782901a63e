/**
 * rebind's server-side HTTP/2 transport, purpose-built for gRPC: one
 * H2Connection per accepted socket, a light H2Stream per request (a plain
 * object with callback fields: no Duplex, no EventEmitter, no per-stream
 * closures), strict RFC 9113 handling and a bound plus a counter on
 * everything a peer can make us hold.
 *
 * Output of a connection is queued and written once per event-loop turn
 * (setImmediate): many responses to many streams in one turn are one socket
 * write. The output queue, flow control and backpressure are shared with
 * the client (session.ts: H2Session, FlowStream).
 *
 * For a relay written against node's ServerHttp2Stream (src/balancer/proxy.ts):
 *   'data' + 'end'             -> stream.read((chunk, endStream) => …)
 *   'drain'                    -> stream.onDrain
 *   'close' (+ rstCode)        -> stream.onClose(rstCode); stream.rstCode
 *   'error'                    -> none: failures arrive as onClose(code)
 *   pause() / resume()         -> the same
 *   respond(h, {endStream})    -> respond(h | EncodedHeaders, {endStream})
 *   respond(h, {waitForTrailers}) + 'wantTrailers' + sendTrailers(t)
 *                              -> respond(h); write(…); end(t) (trailers wait for queued data)
 *   write(chunk): boolean      -> the same (false at the high-water mark)
 *   end()                      -> end() (empty DATA with END_STREAM)
 *   close(code)                -> reset(code)
 *   headersSent / writableEnded / rstCode -> the same; closed/destroyed -> closed
 *   headers object             -> method/path/authority/scheme, header(name), rawHeaders
 *   session.socket.remoteAddress -> connection.remoteAddress
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { Duplex } from 'node:stream';
import {
  CLIENT_PREFACE,
  DEFAULT_WINDOW_BYTES,
  ErrorCode,
  Flag,
  FRAME_HEADER_BYTES,
  dataOf,
  FrameReader,
  FrameType,
  goawayFrame,
  H2ConnectionError,
  HeaderBlockAssembler,
  headersFrames,
  MAX_MAX_FRAME_SIZE_BYTES,
  MAX_WINDOW_BYTES,
  MIN_MAX_FRAME_SIZE_BYTES,
  pingAckFrame,
  RateWindow,
  rstStreamFrame,
  SETTINGS_ACK_FRAME,
  SettingId,
  settingsFrame,
  windowUpdateFrame,
  writeFrameHeader,
  youngList,
  type FrameSink,
} from './frames.js';
import { DEFAULT_HEADER_TABLE_SIZE_BYTES, DEFAULT_MAX_HEADER_LIST_SIZE_BYTES, HpackDecoder, HpackEncoder, HpackError, type HeadersInit } from './hpack.js';
import { EMPTY, FlowStream, H2Session } from './session.js';

export { ErrorCode } from './frames.js';

// ---------------------------------------------------------------------------
// Options

/** Streams a client may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS); more are refused. */
export const DEFAULT_MAX_CONCURRENT_STREAMS = 1000;
/** Per-stream receive window we advertise (SETTINGS_INITIAL_WINDOW_SIZE): bounds a stream's unread input. */
export const DEFAULT_INITIAL_WINDOW_SIZE_BYTES = 256 * 1024;
/** Connection receive window: bounds a connection's unread input across streams. */
export const DEFAULT_CONNECTION_WINDOW_SIZE_BYTES = 1024 * 1024;
/** HEADER_TABLE_SIZE we advertise: the HPACK decoder's dynamic table bound. */
export const DEFAULT_H2_HEADER_TABLE_SIZE_BYTES = DEFAULT_HEADER_TABLE_SIZE_BYTES;
/** MAX_HEADER_LIST_SIZE we advertise and enforce while decoding. */
export const DEFAULT_H2_MAX_HEADER_LIST_SIZE_BYTES = DEFAULT_MAX_HEADER_LIST_SIZE_BYTES;
/** CONTINUATION frames accepted after one HEADERS (CONTINUATION flood bound). */
export const DEFAULT_MAX_CONTINUATION_FRAMES = 16;
/** Bytes of one header block across HEADERS + CONTINUATION (buffered before decoding). */
export const DEFAULT_MAX_HEADER_BLOCK_BYTES = 64 * 1024;
/** Client RST_STREAMs accepted per reset window before GOAWAY ENHANCE_YOUR_CALM (rapid reset, CVE-2023-44487). */
export const DEFAULT_MAX_RESETS_PER_WINDOW = 1000;
/** Length of the window for the reset and empty-frame counts. */
export const DEFAULT_ABUSE_WINDOW_MS = 1000;
/** Zero-length DATA/CONTINUATION frames (without END_STREAM/END_HEADERS) accepted per window. */
export const DEFAULT_MAX_EMPTY_FRAMES_PER_WINDOW = 1000;
/** Output a connection may have queued (ours + the socket's) before it is destroyed (PING/SETTINGS flood of a non-reader). */
export const DEFAULT_MAX_QUEUED_OUTPUT_BYTES = 4 * 1024 * 1024;
/** Response bytes a stream may hold waiting for the peer's window before it is reset. */
export const DEFAULT_MAX_STREAM_BUFFERED_OUTPUT_BYTES = 1024 * 1024;
/** write() returns false once a stream holds this many unsent bytes. */
export const DEFAULT_STREAM_HIGH_WATER_MARK_BYTES = 64 * 1024;
/** Time from accept to the client preface and first SETTINGS. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
/** Time a connection may have no open stream before GOAWAY (0: never). */
export const DEFAULT_IDLE_TIMEOUT_MS = 300_000;

/** Options of H2Connection / createH2Server (all optional; defaults above). */
export interface H2Options {
  maxConcurrentStreams?: number;
  initialWindowSizeBytes?: number;
  connectionWindowSizeBytes?: number;
  headerTableSizeBytes?: number;
  maxHeaderListSizeBytes?: number;
  maxContinuationFrames?: number;
  maxHeaderBlockBytes?: number;
  maxResetsPerWindow?: number;
  maxEmptyFramesPerWindow?: number;
  abuseWindowMs?: number;
  maxQueuedOutputBytes?: number;
  maxStreamBufferedOutputBytes?: number;
  streamHighWaterMarkBytes?: number;
  handshakeTimeoutMs?: number;
  idleTimeoutMs?: number;
}

type ResolvedOptions = Required<H2Options>;

/** @internal Reads an integer option in [min, max] or its default; shared with the client's options. */
export function intIn<T extends object>(opts: T, field: keyof T & string, def: number, min: number, max: number): number {
  const v = opts[field] as unknown;
  if (v === undefined) return def;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new RangeError(`h2 option ${field} must be an integer in [${min}, ${max}], got ${String(v)}`);
  }
  return v;
}

/** Options objects returned by resolveH2Options: connections share them instead of copying. */
const resolvedOptions = new WeakSet<object>();

/** Validates options and fills defaults. @throws RangeError naming the field and range. */
export function resolveH2Options(opts: H2Options = {}): ResolvedOptions {
  if (resolvedOptions.has(opts)) return opts as ResolvedOptions;
  const resolved: ResolvedOptions = {
    maxConcurrentStreams: intIn(opts, 'maxConcurrentStreams', DEFAULT_MAX_CONCURRENT_STREAMS, 1, 2 ** 31 - 1),
    initialWindowSizeBytes: intIn(opts, 'initialWindowSizeBytes', DEFAULT_INITIAL_WINDOW_SIZE_BYTES, DEFAULT_WINDOW_BYTES, MAX_WINDOW_BYTES),
    connectionWindowSizeBytes: intIn(opts, 'connectionWindowSizeBytes', DEFAULT_CONNECTION_WINDOW_SIZE_BYTES, DEFAULT_WINDOW_BYTES, MAX_WINDOW_BYTES),
    headerTableSizeBytes: intIn(opts, 'headerTableSizeBytes', DEFAULT_H2_HEADER_TABLE_SIZE_BYTES, DEFAULT_HEADER_TABLE_SIZE_BYTES, 1 << 20),
    maxHeaderListSizeBytes: intIn(opts, 'maxHeaderListSizeBytes', DEFAULT_H2_MAX_HEADER_LIST_SIZE_BYTES, 1024, 1 << 24),
    maxContinuationFrames: intIn(opts, 'maxContinuationFrames', DEFAULT_MAX_CONTINUATION_FRAMES, 0, 1 << 16),
    maxHeaderBlockBytes: intIn(opts, 'maxHeaderBlockBytes', DEFAULT_MAX_HEADER_BLOCK_BYTES, 1024, 1 << 24),
    maxResetsPerWindow: intIn(opts, 'maxResetsPerWindow', DEFAULT_MAX_RESETS_PER_WINDOW, 1, 2 ** 31 - 1),
    maxEmptyFramesPerWindow: intIn(opts, 'maxEmptyFramesPerWindow', DEFAULT_MAX_EMPTY_FRAMES_PER_WINDOW, 1, 2 ** 31 - 1),
    abuseWindowMs: intIn(opts, 'abuseWindowMs', DEFAULT_ABUSE_WINDOW_MS, 1, 3_600_000),
    maxQueuedOutputBytes: intIn(opts, 'maxQueuedOutputBytes', DEFAULT_MAX_QUEUED_OUTPUT_BYTES, 64 * 1024, 2 ** 31 - 1),
    maxStreamBufferedOutputBytes: intIn(opts, 'maxStreamBufferedOutputBytes', DEFAULT_MAX_STREAM_BUFFERED_OUTPUT_BYTES, 1024, 2 ** 31 - 1),
    streamHighWaterMarkBytes: intIn(opts, 'streamHighWaterMarkBytes', DEFAULT_STREAM_HIGH_WATER_MARK_BYTES, 1, 2 ** 31 - 1),
    handshakeTimeoutMs: intIn(opts, 'handshakeTimeoutMs', DEFAULT_HANDSHAKE_TIMEOUT_MS, 1, 3_600_000),
    idleTimeoutMs: intIn(opts, 'idleTimeoutMs', DEFAULT_IDLE_TIMEOUT_MS, 0, 2 ** 31 - 1),
  };
  resolvedOptions.add(resolved);
  return resolved;
}

// ---------------------------------------------------------------------------
// Counters

/** Counters of a server (shared by its connections) or of a lone connection. */
export class H2Counters {
  connectionsAccepted = 0;
  connectionsClosed = 0;
  streamsOpened = 0;
  /** Streams refused above MAX_CONCURRENT_STREAMS (RST_STREAM REFUSED_STREAM). */
  streamsRefused = 0;
  /** Requests whose header list exceeded MAX_HEADER_LIST_SIZE (RST_STREAM ENHANCE_YOUR_CALM). */
  headerListTooLarge = 0;
  /** Malformed requests (pseudo-headers, names, connection headers; RST_STREAM PROTOCOL_ERROR). */
  malformedRequests = 0;
  /** Header blocks beyond the CONTINUATION count/size bound (GOAWAY ENHANCE_YOUR_CALM). */
  continuationFloods = 0;
  /** Connections ended for too many client RST_STREAMs in a window (GOAWAY ENHANCE_YOUR_CALM). */
  rapidResets = 0;
  /** Connections ended for too many empty frames in a window (GOAWAY ENHANCE_YOUR_CALM). */
  emptyFrameFloods = 0;
  /** Connections destroyed because queued output exceeded maxQueuedOutputBytes. */
  outputOverflows = 0;
  /** Streams reset because their unsent output exceeded maxStreamBufferedOutputBytes. */
  streamOutputOverflows = 0;
  /** Connections destroyed without a preface/first SETTINGS in time. */
  handshakeTimeouts = 0;
  /** Connections sent GOAWAY after idleTimeoutMs with no stream. */
  idleTimeouts = 0;
  /** Connections closed for a bad client preface. */
  badPrefaces = 0;
  /** Connection errors sent (GOAWAY with a code other than NO_ERROR), by code. */
  goawayByCode: Record<number, number> = {};
  /** Client RST_STREAM frames received. */
  resetsReceived = 0;
  /** PING frames answered. */
  pingsReceived = 0;
}

// ---------------------------------------------------------------------------
// Headers

/** A header block encoded once (HpackEncoder: no dynamic table), reusable on any connection. */
export class EncodedHeaders {
  /** @internal */
  constructor(readonly block: Buffer) {}
}

/** Encoding helpers. */
export const H2Headers = {
  /** Encodes headers once; the result may be passed to respond()/end() on any stream of any connection. */
  encode(headers: HeadersInit): EncodedHeaders {
    return new EncodedHeaders(HpackEncoder.encode(headers));
  },
  /** Encodes a flat `name, value, …` list (pseudo-headers first), e.g. a relayed response's filtered rawHeaders. */
  encodeFlat(list: readonly string[]): EncodedHeaders {
    return new EncodedHeaders(HpackEncoder.encodeFlat(list));
  },
};


/** RFC 9113 §8.2.1: a regular field name is lower-case visible ASCII without ':' (token characters in practice). */
/** @internal Shared with the client's response checks. */
export function validFieldName(name: string): boolean {
  for (let k = 0; k < name.length; k++) {
    const c = name.charCodeAt(k);
    if (c <= 0x20 || c >= 0x7f || (c >= 0x41 && c <= 0x5a) || c === 0x3a) return false;
  }
  return true;
}

/** RFC 9113 §8.2.1: no NUL, CR or LF in a value, and no leading or trailing space or tab. */
/** @internal Shared with the client's response checks. */
export function validFieldValue(v: string): boolean {
  const n = v.length;
  if (n === 0) return true;
  let c = v.charCodeAt(0);
  if (c === 0x20 || c === 0x09) return false;
  c = v.charCodeAt(n - 1);
  if (c === 0x20 || c === 0x09) return false;
  for (let k = 0; k < n; k++) {
    c = v.charCodeAt(k);
    if (c === 0x00 || c === 0x0a || c === 0x0d) return false;
  }
  return true;
}

/** @internal Connection-specific fields a gRPC/HTTP/2 message must not carry (RFC 9113 §8.2.2). */
export const CONNECTION_HEADERS = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);

// ---------------------------------------------------------------------------
// Stream

/**
 * One request stream. A plain object: set the callback fields you need.
 *
 * Request side: `method`/`path`/`authority`/`scheme`, `header(name)`,
 * `rawHeaders` (flat name, value list, for a relay to copy). Body: call
 * `read(onData)`; chunks arrive as `(chunk, endStream)` (the final call may
 * carry an empty chunk). Chunks may be views of a socket buffer: copy to keep
 * them long. Credit (WINDOW_UPDATE) is given back when a chunk is delivered;
 * `pause()` stops delivery (data then queues, bounded by the stream window the
 * peer may not exceed), `resume()` delivers the queue and credits it.
 *
 * Response side: `respond(headers | EncodedHeaders, { endStream })`,
 * `write(chunk): boolean` (false at or above the high-water mark: wait for
 * `onDrain`), `end(trailers?)`, `reset(code)`. `onClose(rstCode)` fires once
 * when the stream ends (0 after a clean end both ways).
 */
export class H2Stream extends FlowStream {
  /** Request method (`:method`). */
  method = '';
  /** Request path (`:path`). */
  path = '';
  /** `:authority` ('' when absent). */
  authority = '';
  /** `:scheme`. */
  scheme = '';

  /** Body callback, set through read(). */
  override onData: ((this: H2Stream, chunk: Buffer, endStream: boolean) => void) | null = null;
  /** Request trailers (flat list), before the final onData(…, true). */
  onTrailers: ((rawTrailers: string[]) => void) | null = null;
  /** write() returned false and the buffered output is below the high-water mark again. */
  override onDrain: ((this: H2Stream) => void) | null = null;
  /** The stream closed: 0 after a clean end, else the RST_STREAM / GOAWAY code (called with the stream as `this`). */
  onClose: ((this: H2Stream, rstCode: number) => void) | null = null;
  /** Free slot for the consumer's per-stream state (avoids closures). */
  context: unknown = undefined;

  /** Response HEADERS queued. */
  headersSent = false;
  /** END_STREAM sent or queued by us (end() called or respond with endStream). */
  writableEnded = false;
  /** The code the stream closed with (undefined while open). */
  rstCode: number | undefined = undefined;

  /** @internal */ pendingTrailers: Buffer | null = null;

  /** @internal */
  constructor(
    /** The connection the stream belongs to. */
    readonly connection: H2Connection,
    /** Stream id (odd). */
    id: number,
    /** Decoded request headers, flat `name, value, …` (pseudo-headers first). */
    readonly rawHeaders: string[],
    recvWindow: number,
    sendWindow: number,
  ) {
    super(id, recvWindow, sendWindow);
  }

  /** First value of a regular (non-pseudo) request header, lower-case name. */
  header(name: string): string | undefined {
    const h = this.rawHeaders;
    for (let i = 0; i < h.length; i += 2) if (h[i] === name) return h[i + 1];
    return undefined;
  }

  /** Sets the body callback and delivers what arrived before. */
  read(onData: (this: H2Stream, chunk: Buffer, endStream: boolean) => void): void {
    this.onData = onData;
    if (!this.paused) this.connection.deliverQueued(this);
  }

  /** Stops body delivery (and crediting the peer's window). */
  pause(): void {
    this.paused = true;
  }

  /** Resumes body delivery. */
  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.connection.deliverQueued(this);
  }

  /** Sends response headers; `endStream` makes it a Trailers-Only response. */
  respond(headers: HeadersInit | EncodedHeaders, options?: { endStream?: boolean }): void {
    if (this.closed) return;
    if (this.headersSent) throw new Error(`h2 stream ${this.id}: headers already sent`);
    const block = headers instanceof EncodedHeaders ? headers.block : HpackEncoder.encode(headers);
    this.headersSent = true;
    const endStream = options?.endStream === true;
    if (endStream) this.writableEnded = true;
    this.connection.sendHeaders(this, block, endStream);
  }

  /** Queues body bytes; false when the caller should wait for onDrain. */
  write(chunk: Buffer): boolean {
    if (!this.headersSent) throw new Error(`h2 stream ${this.id}: write before respond`);
    if (this.closed || this.writableEnded) return false;
    if (chunk.length === 0) return true;
    return this.connection.writeData(this, chunk);
  }

  /** Ends the response: with trailers (HEADERS END_STREAM) or an empty DATA END_STREAM. */
  end(trailers?: HeadersInit | EncodedHeaders): void {
    if (this.closed || this.writableEnded) return;
    if (!this.headersSent) throw new Error(`h2 stream ${this.id}: end before respond (use respond(…, { endStream: true }))`);
    this.writableEnded = true;
    const block = trailers === undefined ? null : trailers instanceof EncodedHeaders ? trailers.block : HpackEncoder.encode(trailers);
    this.connection.endStream(this, block);
  }

  /** Resets the stream (RST_STREAM `code`, CANCEL by default). */
  reset(code: number = ErrorCode.CANCEL): void {
    if (this.closed) return;
    this.connection.resetStream(this, code);
  }

}

// ---------------------------------------------------------------------------
// Connection

const enum State {
  Preface,
  Settings,
  Open,
  Dead,
}

/** Called for every new request stream. */
export type StreamHandler = (stream: H2Stream) => void;

/**
 * Serves HTTP/2 on one connected Duplex (net.Socket, or tls.TLSSocket after
 * ALPN h2). Sends its SETTINGS at once.
 */
export class H2Connection extends H2Session<H2Stream> implements FrameSink {
  /** Peer address of the socket. */
  readonly remoteAddress: string | undefined;
  /** Called once when the connection is gone. */
  onClose: (() => void) | null = null;
  /** Called when the connection is closed for having had no stream for idleTimeoutMs (before its GOAWAY). */
  onIdleTimeout: (() => void) | null = null;

  private readonly opts: ResolvedOptions;
  private readonly reader: FrameReader;
  private readonly decoder: HpackDecoder;
  private state = State.Preface;
  private prefaceFill = 0;
  private lastStreamId = 0;
  private goawaySent = false;
  private peerGoaway = false;

  private awaitingRemoteEnd: H2Stream[] = youngList();
  protected readonly endOnLastData = false;

  private readonly headerBlocks: HeaderBlockAssembler;

  private readonly resets: RateWindow;
  private readonly emptyFrames: RateWindow;

  private handshakeTimer: NodeJS.Timeout | null;
  private idleTimer: NodeJS.Timeout | null = null;
  private idleSince = 0;

  private readonly checkIdleBound = (): void => this.checkIdle();

  constructor(
    /** The connected socket. */
    socket: Duplex,
    private readonly onStream: StreamHandler,
    options: H2Options | ResolvedOptions = {},
    /** Counters to add to (a server passes its shared one). */
    readonly counters: H2Counters = new H2Counters(),
    /**
     * Bytes already read from the socket by whoever accepted it (a router
     * that looked at the first request before choosing a server), from the
     * client preface on: processed as if they had just arrived, before any
     * later socket data. Streams they open reach `onStream` during the
     * constructor.
     */
    initialData?: Buffer,
  ) {
    const opts = resolveH2Options(options);
    super(socket, opts);
    this.opts = opts;
    this.remoteAddress = (socket as net.Socket).remoteAddress;
    this.reader = new FrameReader(this, MIN_MAX_FRAME_SIZE_BYTES);
    this.decoder = new HpackDecoder(this.opts.headerTableSizeBytes, this.opts.maxHeaderListSizeBytes);
    this.emptyFrames = new RateWindow(this.opts.maxEmptyFramesPerWindow, this.opts.abuseWindowMs);
    this.resets = new RateWindow(this.opts.maxResetsPerWindow, this.opts.abuseWindowMs);
    this.headerBlocks = new HeaderBlockAssembler(
      this.opts.maxContinuationFrames,
      this.opts.maxHeaderBlockBytes,
      () => this.counters.continuationFloods++,
      () => this.noteEmptyFrame(),
    );
    counters.connectionsAccepted++;
    socket.on('data', (chunk: Buffer) => this.onSocketData(chunk));
    socket.on('error', () => this.destroy());
    socket.on('close', () => this.onSocketClose());
    socket.on('drain', () => this.unblockStreams());
    socket.on('end', () => this.onSocketEnd());
    this.handshakeTimer = setTimeout(() => {
      this.counters.handshakeTimeouts++;
      this.destroy();
    }, this.opts.handshakeTimeoutMs);
    this.handshakeTimer.unref();
    // Server preface: our SETTINGS (+ the connection window beyond the RFC's 65535).
    this.queue(
      settingsFrame([
        [SettingId.MAX_CONCURRENT_STREAMS, this.opts.maxConcurrentStreams],
        [SettingId.INITIAL_WINDOW_SIZE, this.opts.initialWindowSizeBytes],
        [SettingId.MAX_HEADER_LIST_SIZE, this.opts.maxHeaderListSizeBytes],
        [SettingId.HEADER_TABLE_SIZE, this.opts.headerTableSizeBytes],
        [SettingId.ENABLE_PUSH, 0],
      ]),
    );
    if (this.opts.connectionWindowSizeBytes > DEFAULT_WINDOW_BYTES) {
      this.queue(windowUpdateFrame(0, this.opts.connectionWindowSizeBytes - DEFAULT_WINDOW_BYTES));
    }
    if (initialData !== undefined && initialData.length > 0) this.onSocketData(initialData);
  }

  /** Open streams. */
  get openStreams(): number {
    return this.streams.size;
  }

  /** True once the connection is gone (or going: GOAWAY after an error). */
  get destroyed(): boolean {
    return this.state === State.Dead;
  }

  /** Per-connection view: open streams, queued output, and the (possibly shared) counters. */
  stats(): { openStreams: number; queuedOutputBytes: number; lastStreamId: number; counters: H2Counters } {
    return { openStreams: this.streams.size, queuedOutputBytes: this.queuedOutputBytes(), lastStreamId: this.lastStreamId, counters: this.counters };
  }

  /**
   * Graceful close: GOAWAY NO_ERROR with the last stream id; streams in
   * progress finish, then the socket ends. New streams are ignored.
   */
  close(): void {
    if (this.state === State.Dead || this.goawaySent) return;
    this.goawaySent = true;
    this.queue(goawayFrame(this.lastStreamId, ErrorCode.NO_ERROR));
    this.maybeFinish();
  }

  /**
   * Connection error of our choosing (e.g. ENHANCE_YOUR_CALM for a peer
   * that abuses the server above the transport): GOAWAY `code`, open streams
   * close with `code`, the socket ends. Counted in goawayByCode. Do not call
   * it from inside this connection's own stream callbacks when the caller
   * still uses the stream afterwards: streams close synchronously.
   */
  closeWithError(code: number, message = ''): void {
    this.connectionError(code, message);
  }

  /** Destroys the socket at once; open streams close with CANCEL. */
  destroy(): void {
    this.state = State.Dead;
    this.dead = true;
    this.reader.stopped = true;
    this.clearTimers();
    this.closeAll(ErrorCode.CANCEL);
    this.out.length = 0;
    this.outBytes = 0;
    if (!this.socket.destroyed) this.socket.destroy();
  }

  // --- input ---------------------------------------------------------------

  private onSocketData(chunk: Buffer): void {
    if (this.state === State.Dead) return;
    if (this.state === State.Preface) {
      const want = CLIENT_PREFACE.length - this.prefaceFill;
      const n = chunk.length < want ? chunk.length : want;
      if (CLIENT_PREFACE.compare(chunk, 0, n, this.prefaceFill, this.prefaceFill + n) !== 0) {
        this.counters.badPrefaces++;
        this.destroy();
        return;
      }
      this.prefaceFill += n;
      if (this.prefaceFill < CLIENT_PREFACE.length) return;
      this.state = State.Settings;
      if (n === chunk.length) return;
      chunk = chunk.subarray(n);
    }
    try {
      this.reader.push(chunk);
    } catch (e) {
      if (e instanceof H2ConnectionError || e instanceof HpackError) this.connectionError(e.code, e.message);
      else throw e;
    }
  }

  private onSocketEnd(): void {
    // The peer half-closed: nothing more will come; finish what we owe, then end.
    this.peerGoaway = true;
    this.maybeFinish();
  }

  private onSocketClose(): void {
    this.state = State.Dead;
    this.dead = true;
    this.reader.stopped = true;
    this.clearTimers();
    this.closeAll(ErrorCode.CANCEL);
    this.counters.connectionsClosed++;
    const cb = this.onClose;
    this.onClose = null;
    cb?.();
  }

  /** @internal FrameSink */
  onFrame(type: number, flags: number, sid: number, p: Buffer): void {
    if (this.state === State.Dead) return;
    if (this.headerBlocks.stream !== 0 && type !== FrameType.CONTINUATION) {
      throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'frame inside a header block');
    }
    if (this.state === State.Settings && (type !== FrameType.SETTINGS || (flags & Flag.ACK) !== 0)) {
      throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'first frame is not SETTINGS');
    }
    switch (type) {
      case FrameType.DATA:
        return this.onDataFrame(flags, sid, p);
      case FrameType.HEADERS:
        return this.onHeadersFrame(flags, sid, p);
      case FrameType.CONTINUATION:
        return this.onContinuation(flags, sid, p);
      case FrameType.PRIORITY:
        if (sid === 0) throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'PRIORITY on stream 0');
        if (p.length !== 5) throw new H2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'PRIORITY length');
        return; // RFC 9113 deprecates priority signalling: ignored.
      case FrameType.RST_STREAM:
        return this.onRstStream(sid, p);
      case FrameType.SETTINGS:
        return this.onSettings(flags, sid, p);
      case FrameType.PUSH_PROMISE:
        throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'PUSH_PROMISE from a client');
      case FrameType.PING:
        if (sid !== 0) throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'PING on a stream');
        if (p.length !== 8) throw new H2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'PING length');
        if ((flags & Flag.ACK) === 0) {
          this.counters.pingsReceived++;
          this.queue(pingAckFrame(p));
        }
        return;
      case FrameType.GOAWAY:
        if (sid !== 0) throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'GOAWAY on a stream');
        if (p.length < 8) throw new H2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'GOAWAY length');
        this.peerGoaway = true;
        this.maybeFinish();
        return;
      case FrameType.WINDOW_UPDATE:
        return this.onWindowUpdate(sid, p);
      default:
        return; // Unknown frame types are ignored (RFC 9113 §4.1).
    }
  }

  private onSettings(flags: number, sid: number, p: Buffer): void {
    if (sid !== 0) throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'SETTINGS on a stream');
    if ((flags & Flag.ACK) !== 0) {
      if (p.length !== 0) throw new H2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'SETTINGS ACK with payload');
      return;
    }
    if (p.length % 6 !== 0) throw new H2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'SETTINGS length');
    // A window change is applied to the streams once per frame, with the frame's last value:
    // a frame repeating INITIAL_WINDOW_SIZE 2,730 times must not cost 2,730 passes over the streams.
    let initialWindow = -1;
    for (let off = 0; off < p.length; off += 6) {
      const id = p.readUInt16BE(off);
      const v = p.readUInt32BE(off + 2);
      switch (id) {
        case SettingId.ENABLE_PUSH:
          if (v > 1) throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'ENABLE_PUSH');
          break;
        case SettingId.INITIAL_WINDOW_SIZE: {
          if (v > MAX_WINDOW_BYTES) throw new H2ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, 'INITIAL_WINDOW_SIZE');
          initialWindow = v;
          break;
        }
        case SettingId.MAX_FRAME_SIZE:
          if (v < MIN_MAX_FRAME_SIZE_BYTES || v > MAX_MAX_FRAME_SIZE_BYTES) throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'MAX_FRAME_SIZE');
          this.peerMaxFrameSize = v;
          break;
        default:
          break; // HEADER_TABLE_SIZE: our encoder never uses the dynamic table. Others: advisory.
      }
    }
    if (initialWindow >= 0) this.applyInitialWindow(initialWindow);
    this.queue(SETTINGS_ACK_FRAME);
    if (this.state === State.Settings) {
      this.state = State.Open;
      if (this.handshakeTimer !== null) clearTimeout(this.handshakeTimer);
      this.handshakeTimer = null;
      this.armIdle();
    }
  }

  private onRstStream(sid: number, p: Buffer): void {
    if (p.length !== 4) throw new H2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'RST_STREAM length');
    if (sid === 0) throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'RST_STREAM on stream 0');
    if (sid > this.lastStreamId) throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'RST_STREAM on an idle stream');
    this.counters.resetsReceived++;
    this.countReset();
    const s = this.streams.get(sid);
    if (s !== undefined) this.closeStream(s, p.readUInt32BE(0));
  }

  /**
   * Counts a stream ended early by the peer: its RST_STREAM, or a stream
   * error it provoked (we reset; "MadeYouReset", CVE-2025-8671). Either way
   * the stream no longer counts against MAX_CONCURRENT_STREAMS, so the rate
   * is what bounds the work.
   */
  private countReset(): void {
    if (this.resets.hit()) {
      this.counters.rapidResets++;
      throw new H2ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, 'too many streams reset');
    }
  }

  /** Resets a stream for an error the peer caused, counted with the peer's own resets. */
  private peerStreamError(s: H2Stream, code: number): void {
    this.countReset();
    this.resetStream(s, code);
  }

  private noteEmptyFrame(): void {
    if (this.emptyFrames.hit()) {
      this.counters.emptyFrameFloods++;
      throw new H2ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, 'too many empty frames');
    }
  }

  private onDataFrame(flags: number, sid: number, p: Buffer): void {
    if (sid === 0) throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'DATA on stream 0');
    const flowLen = p.length;
    if (flowLen > this.recvWindow) throw new H2ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, 'connection window exceeded');
    this.recvWindow -= flowLen;
    const data = dataOf(flags, p);
    const endStream = (flags & Flag.END_STREAM) !== 0;
    const s = this.streams.get(sid);
    if (s === undefined) {
      if (sid > this.lastStreamId) throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'DATA on an idle stream');
      // A stream we closed or reset: drop the data, keep the connection window whole.
      this.creditConnection(flowLen);
      return;
    }
    if (s.readableEnded) {
      this.creditConnection(flowLen);
      this.peerStreamError(s, ErrorCode.STREAM_CLOSED);
      return;
    }
    if (flowLen > s.recvWindow) {
      this.creditConnection(flowLen);
      this.peerStreamError(s, ErrorCode.FLOW_CONTROL_ERROR);
      return;
    }
    s.recvWindow -= flowLen;
    if (data.length === 0 && !endStream) this.noteEmptyFrame();
    if (s.writableEnded && !s.pendingEnd) {
      // We answered already; the rest of the request is not wanted.
      this.creditConnection(flowLen);
      if (endStream) {
        s.readableEnded = true;
        this.closeStream(s, ErrorCode.NO_ERROR);
      }
      return;
    }
    // Padding is consumed at once.
    const padBytes = flowLen - data.length;
    if (padBytes > 0) this.consumed(s, padBytes);
    if (endStream) s.readableEnded = true;
    if (s.onData !== null && !s.paused && s.inQueue === null) {
      if (data.length > 0 || endStream) s.onData(data, endStream);
      if (data.length > 0 && !s.closed) this.consumed(s, data.length);
      else if (data.length > 0) this.creditConnection(data.length);
    } else {
      // Queued until read()/resume(); copied so a small chunk does not pin a large socket buffer.
      if (data.length > 0) {
        if (s.inQueue === null) s.inQueue = youngList();
        s.inQueue.push(Buffer.from(data));
        s.inQueuedBytes += data.length;
      }
      if (endStream) s.inEndPending = true;
    }
    if (endStream) this.maybeCloseStream(s);
  }

  private onHeadersFrame(flags: number, sid: number, p: Buffer): void {
    if (sid === 0 || (sid & 1) === 0) throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, `HEADERS on stream ${sid}`);
    const frag = HeaderBlockAssembler.fragment(flags, p);
    const endStream = (flags & Flag.END_STREAM) !== 0;
    if ((flags & Flag.END_HEADERS) !== 0) {
      this.onHeaderBlock(sid, frag, endStream);
      return;
    }
    this.headerBlocks.start(sid, frag, endStream);
  }

  private onContinuation(flags: number, sid: number, p: Buffer): void {
    const block = this.headerBlocks.continuation(flags, sid, p);
    if (block !== null) this.onHeaderBlock(sid, block, this.headerBlocks.endStream);
  }

  private onHeaderBlock(sid: number, block: Buffer, endStream: boolean): void {
    // Born young (see youngList): a long-lived stream's list must not get this site pretenured for every other stream's.
    const list: string[] = youngList();
    // Always decode: the HPACK table must stay in sync even for streams we refuse.
    const fits = this.decoder.decode(block, list);
    const existing = this.streams.get(sid);
    if (existing !== undefined) {
      // Trailers.
      if (existing.readableEnded) return this.peerStreamError(existing, ErrorCode.STREAM_CLOSED);
      if (!endStream || !fits) return this.peerStreamError(existing, ErrorCode.PROTOCOL_ERROR);
      for (let i = 0; i < list.length; i += 2) {
        if (list[i]!.charCodeAt(0) === 58) {
          this.counters.malformedRequests++;
          return this.peerStreamError(existing, ErrorCode.PROTOCOL_ERROR);
        }
      }
      existing.readableEnded = true;
      existing.onTrailers?.(list);
      if (existing.closed) return;
      if (existing.onData !== null && !existing.paused && existing.inQueue === null) existing.onData(EMPTY, true);
      else existing.inEndPending = true;
      this.maybeCloseStream(existing);
      return;
    }
    if (sid <= this.lastStreamId) {
      // A stream we closed or reset may still get the peer's trailers (END_STREAM): ignored.
      // Anything else is a new stream with a non-increasing id (RFC 9113 §5.1.1).
      if (endStream) return;
      throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, `stream id ${sid} not above ${this.lastStreamId}`);
    }
    this.lastStreamId = sid;
    if (this.goawaySent || this.state === State.Dead) return;
    if (!fits) {
      this.counters.headerListTooLarge++;
      this.queue(rstStreamFrame(sid, ErrorCode.ENHANCE_YOUR_CALM));
      this.countReset();
      return;
    }
    if (this.streams.size >= this.opts.maxConcurrentStreams) {
      this.counters.streamsRefused++;
      this.queue(rstStreamFrame(sid, ErrorCode.REFUSED_STREAM));
      // A client that ignores our limit gets its streams refused at the rate of resets, then GOAWAY.
      this.countReset();
      return;
    }
    const s = new H2Stream(this, sid, list, this.opts.initialWindowSizeBytes, this.peerInitialWindow);
    if (!this.parseRequestHeaders(s, list)) {
      this.counters.malformedRequests++;
      this.queue(rstStreamFrame(sid, ErrorCode.PROTOCOL_ERROR));
      this.countReset();
      return;
    }
    this.streams.set(sid, s);
    this.counters.streamsOpened++;
    if (endStream) {
      s.readableEnded = true;
      s.inEndPending = true;
    }
    this.onStream(s);
    this.scheduleFlushIfNeeded();
  }

  /** RFC 9113 §8.2-8.3 request checks; fills the pseudo-header fields. */
  private parseRequestHeaders(s: H2Stream, list: string[]): boolean {
    let regular = false;
    let method: string | undefined;
    let path: string | undefined;
    let scheme: string | undefined;
    let authority: string | undefined;
    for (let i = 0; i < list.length; i += 2) {
      const name = list[i]!;
      if (name.length === 0) return false;
      if (name.charCodeAt(0) === 58) {
        if (regular) return false;
        const v = list[i + 1]!;
        if (!validFieldValue(v)) return false;
        if (name === ':method') {
          if (method !== undefined) return false;
          method = v;
        } else if (name === ':path') {
          if (path !== undefined || v.length === 0) return false;
          path = v;
        } else if (name === ':scheme') {
          if (scheme !== undefined) return false;
          scheme = v;
        } else if (name === ':authority') {
          if (authority !== undefined) return false;
          authority = v;
        } else {
          return false;
        }
        continue;
      }
      regular = true;
      if (!validFieldName(name)) return false;
      if (CONNECTION_HEADERS.has(name)) return false;
      const value = list[i + 1]!;
      if (!validFieldValue(value)) return false;
      if (name === 'te' && value !== 'trailers') return false;
    }
    if (method === undefined || path === undefined || scheme === undefined) return false;
    s.method = method;
    s.path = path;
    s.scheme = scheme;
    s.authority = authority ?? '';
    return true;
  }

  // --- output ----------------------------------------------------------------

  /** @internal */
  sendHeaders(s: H2Stream, block: Buffer, endStream: boolean): void {
    this.queue(headersFrames(s.id, block, endStream, this.peerMaxFrameSize));
    if (endStream) this.localEnded(s);
  }

  /** @internal */
  writeData(s: H2Stream, chunk: Buffer): boolean {
    return this.enqueueData(s, chunk, false);
  }

  /** @internal */
  endStream(s: H2Stream, trailers: Buffer | null): void {
    s.pendingEnd = true;
    s.pendingTrailers = trailers;
    this.pump(s);
  }

  protected finishOutput(s: H2Stream): void {
    const t = s.pendingTrailers;
    s.pendingTrailers = null;
    if (t !== null) {
      this.queue(headersFrames(s.id, t, true, this.peerMaxFrameSize));
    } else {
      const f = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
      writeFrameHeader(f, 0, 0, FrameType.DATA, Flag.END_STREAM, s.id);
      this.queue(f);
    }
    this.localEnded(s);
  }

  protected outputEnded(s: H2Stream): void {
    this.localEnded(s);
  }

  protected outputOverflow(): void {
    this.counters.outputOverflows++;
    this.destroy();
  }

  protected streamOutputOverflow(): void {
    this.counters.streamOutputOverflows++;
  }

  protected windowUpdateError(s: H2Stream, code: number): void {
    this.peerStreamError(s, code);
  }

  protected isIdleStream(sid: number): boolean {
    return sid > this.lastStreamId;
  }

  protected override beforeFlush(): void {
    if (this.awaitingRemoteEnd.length > 0) this.settleAwaitingRemoteEnd();
  }

  /** Our END_STREAM is queued: close if the peer is done, else ask it to stop (RST NO_ERROR, §8.1). */
  private localEnded(s: H2Stream): void {
    if (s.readableEnded) {
      this.closeStream(s, ErrorCode.NO_ERROR);
    } else {
      // Decided at flush time: a request whose END_STREAM comes in the same read (a unary
      // call's message right behind its HEADERS) needs no RST_STREAM.
      this.awaitingRemoteEnd.push(s);
    }
  }

  /** Streams we ended while the peer had not: closed at flush, with RST_STREAM NO_ERROR if still open. */
  private settleAwaitingRemoteEnd(): void {
    const list = this.awaitingRemoteEnd;
    this.awaitingRemoteEnd = youngList();
    for (const s of list) {
      if (s.closed) continue;
      if (!s.readableEnded) this.queue(rstStreamFrame(s.id, ErrorCode.NO_ERROR));
      this.closeStream(s, ErrorCode.NO_ERROR);
    }
  }

  private maybeCloseStream(s: H2Stream): void {
    if (s.readableEnded && s.writableEnded && !s.closed && !s.pendingEnd && s.pendingBytes === 0 && s.inQueue === null && !s.inEndPending) {
      this.closeStream(s, ErrorCode.NO_ERROR);
    }
  }

  protected streamClosed(s: H2Stream, code: number): void {
    s.rstCode = code;
    s.pendingTrailers = null;
    const cb = s.onClose;
    s.onClose = null;
    // Called with the stream as `this`, like onData/onDrain: a consumer can share one function across streams.
    if (cb !== null) cb.call(s, code);
  }

  protected streamsEmptied(): void {
    this.armIdle();
    this.maybeFinish();
  }

  private closeAll(code: number): void {
    if (this.streams.size === 0) return;
    for (const s of [...this.streams.values()]) this.closeStream(s, code);
  }

  /** After GOAWAY (ours or the peer's) with no stream left: flush and end the socket. */
  private maybeFinish(): void {
    if (this.ending || this.streams.size > 0) return;
    if (!this.goawaySent && !this.peerGoaway) return;
    this.ending = true;
    this.clearTimers();
    this.scheduleFlushIfNeeded();
  }

  /** Connection error: GOAWAY `code`, close streams, end the socket. */
  private connectionError(code: number, message: string): void {
    if (this.state === State.Dead) return;
    this.counters.goawayByCode[code] = (this.counters.goawayByCode[code] ?? 0) + 1;
    this.reader.stopped = true;
    const frame = goawayFrame(this.lastStreamId, code, message);
    this.out.push(frame);
    this.outBytes += frame.length;
    this.state = State.Dead;
    this.dead = true;
    this.ending = true;
    this.clearTimers();
    this.closeAll(code);
    this.flushScheduled = true;
    this.flush();
  }

  private armIdle(): void {
    if (this.opts.idleTimeoutMs === 0 || this.state !== State.Open || this.goawaySent) return;
    this.idleSince = Date.now();
    if (this.idleTimer === null) {
      this.idleTimer = setTimeout(this.checkIdleBound, this.opts.idleTimeoutMs);
      this.idleTimer.unref();
    }
  }

  private checkIdle(): void {
    this.idleTimer = null;
    if (this.state !== State.Open || this.goawaySent || this.streams.size > 0) return;
    const left = this.idleSince + this.opts.idleTimeoutMs - Date.now();
    if (left > 0) {
      this.idleTimer = setTimeout(this.checkIdleBound, left);
      this.idleTimer.unref();
      return;
    }
    this.counters.idleTimeouts++;
    this.onIdleTimeout?.();
    this.close();
  }

  private clearTimers(): void {
    if (this.handshakeTimer !== null) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    this.idleTimer = null;
  }
}

// ---------------------------------------------------------------------------
// Server helper

/** Options of createH2Server: connection options plus optional TLS (ALPN h2 is required then). */
export interface H2ServerOptions extends H2Options {
  /** TLS (requestCert + rejectUnauthorized + ca verify client certificates in the handshake). */
  tls?: tls.TlsOptions;
  /** Called for each accepted connection (after the TLS handshake and ALPN), before any of its frames. */
  onConnection?: (connection: H2Connection) => void;
}

/** A listening HTTP/2 server over net.Server or tls.Server. */
export interface H2Server {
  readonly server: net.Server | tls.Server;
  readonly connections: Set<H2Connection>;
  readonly counters: H2Counters;
  /** Listens; resolves with the bound address. */
  listen(port: number, host?: string): Promise<net.AddressInfo>;
  /** GOAWAY to every connection, stop accepting; resolves when all connections are gone. */
  close(): Promise<void>;
  /** Destroys every connection and stops accepting. */
  destroy(): void;
  /** Counters plus open connections and streams. */
  stats(): { connections: number; openStreams: number; counters: H2Counters };
}

/** Creates an HTTP/2 server calling `onStream` for each request stream. */
export function createH2Server(options: H2ServerOptions, onStream: StreamHandler): H2Server {
  const { tls: tlsOptions, onConnection, ...h2 } = options;
  const resolved = resolveH2Options(h2);
  const counters = new H2Counters();
  const connections = new Set<H2Connection>();
  const adopt = (socket: net.Socket | tls.TLSSocket): void => {
    socket.setNoDelay(true);
    const c = new H2Connection(socket, onStream, resolved, counters);
    connections.add(c);
    c.onClose = () => connections.delete(c);
    onConnection?.(c);
  };
  let server: net.Server | tls.Server;
  if (tlsOptions !== undefined) {
    server = tls.createServer({ ...tlsOptions, ALPNProtocols: ['h2'] }, (socket) => {
      if (socket.alpnProtocol !== 'h2') {
        socket.destroy();
        return;
      }
      adopt(socket);
    });
  } else {
    server = net.createServer(adopt);
  }
  return {
    server,
    connections,
    counters,
    listen(port: number, host = '127.0.0.1'): Promise<net.AddressInfo> {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve(server.address() as net.AddressInfo);
        });
      });
    },
    close(): Promise<void> {
      return new Promise((resolve) => {
        server.close(() => resolve());
        for (const c of connections) c.close();
      });
    },
    destroy(): void {
      server.close();
      for (const c of [...connections]) c.destroy();
    },
    stats() {
      let openStreams = 0;
      for (const c of connections) openStreams += c.openStreams;
      return { connections: connections.size, openStreams, counters };
    },
  };
}

/**
 * rebind's client-side HTTP/2 transport for gRPC: one H2ClientConnection per
 * connected socket (net, or tls with ALPN h2), a light H2ClientStream per
 * call (a plain object with callback fields, like the server's H2Stream: no
 * Duplex, no EventEmitter, no header objects). Written for the relay
 * (src/balancer/proxy.ts), which takes a call on an H2Stream of the data port
 * and opens it to a replica here.
 *
 * Shared with the server: framing and the input bounds (frames.ts), HPACK
 * (hpack.ts), output queue, flow control and backpressure (session.ts),
 * option and field checks (server.ts). Output is queued and written once per
 * event-loop turn (setImmediate), like the server's: a call's HEADERS and its
 * request DATA go out in one socket write, and a request whose END_STREAM is
 * decided in the same turn as its last chunk goes out as one DATA frame with
 * END_STREAM (a replica runs a unary handler only when it has END_STREAM).
 *
 * For a relay written against node's ClientHttp2Stream:
 *   session.request(h)          -> connection.request(HpackEncoder block) (null: no room)
 *   'response'(h, flags)        -> stream.onResponse(rawHeaders, endStream)
 *   'data' + 'end'              -> stream.read((chunk, endStream) => …)
 *   'trailers'                  -> stream.onTrailers(rawTrailers) (before the final onData(…, true))
 *   'drain'                     -> stream.onDrain
 *   'close' / 'error' + rstCode -> stream.onClose(rstCode); stream.refused (GOAWAY above it)
 *   write(chunk) / end(chunk)   -> the same (end(chunk): END_STREAM on that DATA frame)
 *   close(code)                 -> reset(code)
 *   session.ping(cb)            -> connection.ping(cb)
 *   'goaway' / 'remoteSettings' -> connection.onGoaway / onReady
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
import { DEFAULT_HEADER_TABLE_SIZE_BYTES, DEFAULT_MAX_HEADER_LIST_SIZE_BYTES, HpackDecoder, HpackError } from './hpack.js';
import { EMPTY, FlowStream, H2Session } from './session.js';
import {
  DEFAULT_ABUSE_WINDOW_MS,
  DEFAULT_MAX_CONTINUATION_FRAMES,
  DEFAULT_MAX_EMPTY_FRAMES_PER_WINDOW,
  DEFAULT_MAX_HEADER_BLOCK_BYTES,
  DEFAULT_MAX_QUEUED_OUTPUT_BYTES,
  DEFAULT_MAX_STREAM_BUFFERED_OUTPUT_BYTES,
  DEFAULT_STREAM_HIGH_WATER_MARK_BYTES,
  CONNECTION_HEADERS,
  intIn,
  validFieldName,
  validFieldValue,
} from './server.js';

// ---------------------------------------------------------------------------
// Options

/** Per-stream receive window we advertise (SETTINGS_INITIAL_WINDOW_SIZE): bounds the response bytes a call holds unread. */
export const DEFAULT_CLIENT_INITIAL_WINDOW_SIZE_BYTES = DEFAULT_WINDOW_BYTES;
/** Connection receive window: bounds the unread response bytes across a connection's calls. */
export const DEFAULT_CLIENT_CONNECTION_WINDOW_SIZE_BYTES = 1024 * 1024;
/** Streams we open on one connection at most (the server's MAX_CONCURRENT_STREAMS may be lower). */
export const DEFAULT_CLIENT_MAX_CONCURRENT_STREAMS = 1000;
/** Keepalive PINGs a connection may have unanswered at once; ping() refuses more. */
const MAX_OUTSTANDING_PINGS = 16;

/** Options of H2ClientConnection / connectH2 (all optional; defaults above and in server.ts). */
export interface H2ClientOptions {
  initialWindowSizeBytes?: number;
  connectionWindowSizeBytes?: number;
  maxConcurrentStreams?: number;
  headerTableSizeBytes?: number;
  maxHeaderListSizeBytes?: number;
  maxContinuationFrames?: number;
  maxHeaderBlockBytes?: number;
  maxEmptyFramesPerWindow?: number;
  abuseWindowMs?: number;
  maxQueuedOutputBytes?: number;
  maxStreamBufferedOutputBytes?: number;
  streamHighWaterMarkBytes?: number;
}

type ResolvedClientOptions = Required<H2ClientOptions>;
const resolvedClientOptions = new WeakSet<object>();

/** Validates client options and fills defaults. @throws RangeError naming the field and range. */
export function resolveH2ClientOptions(opts: H2ClientOptions = {}): ResolvedClientOptions {
  if (resolvedClientOptions.has(opts)) return opts as ResolvedClientOptions;
  const resolved: ResolvedClientOptions = {
    // Below 65,535 is allowed: the relay's proxy.streamWindowBytes goes down to 1 KiB.
    initialWindowSizeBytes: intIn(opts, 'initialWindowSizeBytes', DEFAULT_CLIENT_INITIAL_WINDOW_SIZE_BYTES, 1024, MAX_WINDOW_BYTES),
    connectionWindowSizeBytes: intIn(opts, 'connectionWindowSizeBytes', DEFAULT_CLIENT_CONNECTION_WINDOW_SIZE_BYTES, DEFAULT_WINDOW_BYTES, MAX_WINDOW_BYTES),
    maxConcurrentStreams: intIn(opts, 'maxConcurrentStreams', DEFAULT_CLIENT_MAX_CONCURRENT_STREAMS, 1, 2 ** 30),
    headerTableSizeBytes: intIn(opts, 'headerTableSizeBytes', DEFAULT_HEADER_TABLE_SIZE_BYTES, DEFAULT_HEADER_TABLE_SIZE_BYTES, 1 << 20),
    maxHeaderListSizeBytes: intIn(opts, 'maxHeaderListSizeBytes', DEFAULT_MAX_HEADER_LIST_SIZE_BYTES, 1024, 1 << 24),
    maxContinuationFrames: intIn(opts, 'maxContinuationFrames', DEFAULT_MAX_CONTINUATION_FRAMES, 0, 1 << 16),
    maxHeaderBlockBytes: intIn(opts, 'maxHeaderBlockBytes', DEFAULT_MAX_HEADER_BLOCK_BYTES, 1024, 1 << 24),
    maxEmptyFramesPerWindow: intIn(opts, 'maxEmptyFramesPerWindow', DEFAULT_MAX_EMPTY_FRAMES_PER_WINDOW, 1, 2 ** 31 - 1),
    abuseWindowMs: intIn(opts, 'abuseWindowMs', DEFAULT_ABUSE_WINDOW_MS, 1, 3_600_000),
    maxQueuedOutputBytes: intIn(opts, 'maxQueuedOutputBytes', DEFAULT_MAX_QUEUED_OUTPUT_BYTES, 64 * 1024, 2 ** 31 - 1),
    maxStreamBufferedOutputBytes: intIn(opts, 'maxStreamBufferedOutputBytes', DEFAULT_MAX_STREAM_BUFFERED_OUTPUT_BYTES, 1024, 2 ** 31 - 1),
    streamHighWaterMarkBytes: intIn(opts, 'streamHighWaterMarkBytes', DEFAULT_STREAM_HIGH_WATER_MARK_BYTES, 1, 2 ** 31 - 1),
  };
  resolvedClientOptions.add(resolved);
  return resolved;
}

/** A regular response field as RFC 9113 §8.2 allows it (name, value, no connection-specific field). */
function validRegularField(name: string, value: string): boolean {
  return validFieldName(name) && validFieldValue(value) && !CONNECTION_HEADERS.has(name);
}

// ---------------------------------------------------------------------------
// Counters

/** Counters of a set of client connections (a pool passes one shared object). */
export class H2ClientCounters {
  connectionsOpened = 0;
  connectionsClosed = 0;
  streamsOpened = 0;
  /** Responses whose header list exceeded our MAX_HEADER_LIST_SIZE (stream reset). */
  headerListTooLarge = 0;
  /** Malformed responses (no/bad :status, pseudo-headers in trailers, DATA before headers; stream reset). */
  malformedResponses = 0;
  /** Header blocks beyond the CONTINUATION count/size bound (GOAWAY ENHANCE_YOUR_CALM). */
  continuationFloods = 0;
  /** Connections ended for too many empty frames in a window (GOAWAY ENHANCE_YOUR_CALM). */
  emptyFrameFloods = 0;
  /** Connections destroyed because queued output exceeded maxQueuedOutputBytes. */
  outputOverflows = 0;
  /** Streams reset because their unsent request bytes exceeded maxStreamBufferedOutputBytes. */
  streamOutputOverflows = 0;
  /** GOAWAY frames received from servers. */
  goawaysReceived = 0;
  /** Streams closed unprocessed by a server's GOAWAY (id above its last-stream-id). */
  streamsRefusedByGoaway = 0;
  /** Server RST_STREAM frames received. */
  resetsReceived = 0;
  /** Server PINGs answered. */
  pingsReceived = 0;
  /** Connection errors we sent (GOAWAY with a code other than NO_ERROR), by code. */
  goawayByCode: Record<number, number> = {};
}

// ---------------------------------------------------------------------------
// Stream

/**
 * One call. A plain object: set the callback fields you need.
 *
 * Request side: `write(chunk): boolean` (false at or above the high-water
 * mark: wait for `onDrain`), `end(chunk?)` (END_STREAM on the last DATA
 * frame), `reset(code)`. Response side: `onResponse(rawHeaders, endStream)`
 * once (endStream: Trailers-Only), then body chunks through `read(onData)`
 * as `(chunk, endStream)`, `onTrailers(rawTrailers)` before the final
 * onData(…, true). Chunks may be views of a socket buffer. Window credit is
 * given back as chunks are delivered; `pause()` stops delivery (data queues,
 * bounded by the stream window we advertise). `onClose(rstCode)` fires once
 * (0 after a clean end both ways).
 */
export class H2ClientStream extends FlowStream {
  /** Response `:status` (0 before the response headers). */
  status = 0;
  /** Response headers arrived. */
  responded = false;
  /** Response headers: onResponse(rawHeaders, endStream). */
  onResponse: ((this: H2ClientStream, rawHeaders: string[], endStream: boolean) => void) | null = null;
  /** Body callback, set through read(). */
  override onData: ((this: H2ClientStream, chunk: Buffer, endStream: boolean) => void) | null = null;
  /** Response trailers (flat list), before the final onData(…, true). */
  onTrailers: ((this: H2ClientStream, rawTrailers: string[]) => void) | null = null;
  /** write() returned false and the buffered output is below the high-water mark again. */
  override onDrain: ((this: H2ClientStream) => void) | null = null;
  /** The stream closed: 0 after a clean end, else the RST_STREAM / GOAWAY code. */
  onClose: ((this: H2ClientStream, rstCode: number) => void) | null = null;
  /** Free slot for the consumer's per-call state (avoids closures). */
  context: unknown = undefined;

  /** END_STREAM sent or queued by us. */
  writableEnded = false;
  /** The code the stream closed with (undefined while open). */
  rstCode: number | undefined = undefined;
  /** Closed by the server's GOAWAY without being processed (its id above last-stream-id): safe to retry. */
  refused = false;
  /** Why we reset the stream for the server's fault (a malformed or oversized response), or null. */
  localError: string | null = null;

  /** @internal */
  constructor(
    readonly connection: H2ClientConnection,
    /** Stream id (odd). */
    id: number,
    recvWindow: number,
    sendWindow: number,
  ) {
    super(id, recvWindow, sendWindow);
  }

  /** Sets the body callback and delivers what arrived before. */
  read(onData: (this: H2ClientStream, chunk: Buffer, endStream: boolean) => void): void {
    this.onData = onData;
    if (!this.paused) this.connection.deliverQueued(this);
  }

  /** Stops response delivery (and crediting the server's window). */
  pause(): void {
    this.paused = true;
  }

  /** Resumes response delivery. */
  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.connection.deliverQueued(this);
  }

  /** Queues request bytes; false when the caller should wait for onDrain. */
  write(chunk: Buffer): boolean {
    if (this.closed || this.writableEnded) return false;
    if (chunk.length === 0) return true;
    return this.connection.writeData(this, chunk, false);
  }

  /** Ends the request: `chunk` (if any) goes out with END_STREAM on its last DATA frame. */
  end(chunk?: Buffer): void {
    if (this.closed || this.writableEnded) return;
    this.writableEnded = true;
    this.connection.writeData(this, chunk ?? EMPTY, true);
  }

  /** Resets the stream (RST_STREAM `code`, CANCEL by default). */
  reset(code: number = ErrorCode.CANCEL): void {
    if (this.closed) return;
    this.connection.resetStream(this, code);
  }

}

// ---------------------------------------------------------------------------
// Connection

/**
 * A client HTTP/2 connection on one Duplex (net.Socket, or tls.TLSSocket
 * after ALPN h2). Sends the preface and its SETTINGS at once (queued until
 * the socket connects).
 */
export class H2ClientConnection extends H2Session<H2ClientStream> implements FrameSink {
  /** The server's first SETTINGS arrived: its HTTP/2 layer answers. */
  ready = false;
  /** The server sent GOAWAY (no new streams here). */
  goawayReceived = false;
  /** Last-stream-id and code of the server's GOAWAY. */
  goawayLastStreamId = 2 ** 31 - 1;
  goawayCode: number = ErrorCode.NO_ERROR;
  /** The first error that took the connection down (socket error, protocol error), or null. */
  error: Error | null = null;
  /** Called on the server's first SETTINGS. */
  onReady: (() => void) | null = null;
  /** Called on the server's GOAWAY (after the streams above lastStreamId are closed as refused). */
  onGoaway: ((lastStreamId: number, code: number) => void) | null = null;
  /** Called once when the connection is gone (`error` as above). */
  onClose: ((error: Error | null) => void) | null = null;

  private readonly opts: ResolvedClientOptions;
  private readonly reader: FrameReader;
  private readonly decoder: HpackDecoder;
  private nextStreamId = 1;
  /** close() was called: no new streams. */
  private closing = false;
  private peerMaxConcurrentStreams = 2 ** 31 - 1;

  protected readonly endOnLastData = true;

  private readonly headerBlocks: HeaderBlockAssembler;

  private readonly emptyFrames: RateWindow;
  private pingCallbacks: ((ok: boolean) => void)[] = [];
  private pingSeq = 0;

  constructor(
    /** The socket (connected or connecting). */
    socket: Duplex,
    options: H2ClientOptions = {},
    /** Counters to add to (a pool passes its shared one). */
    readonly counters: H2ClientCounters = new H2ClientCounters(),
  ) {
    const opts = resolveH2ClientOptions(options);
    super(socket, opts);
    this.opts = opts;
    this.reader = new FrameReader(this, MIN_MAX_FRAME_SIZE_BYTES);
    this.decoder = new HpackDecoder(this.opts.headerTableSizeBytes, this.opts.maxHeaderListSizeBytes);
    this.emptyFrames = new RateWindow(this.opts.maxEmptyFramesPerWindow, this.opts.abuseWindowMs);
    this.headerBlocks = new HeaderBlockAssembler(
      this.opts.maxContinuationFrames,
      this.opts.maxHeaderBlockBytes,
      () => this.counters.continuationFloods++,
      () => this.noteEmptyFrame(),
    );
    counters.connectionsOpened++;
    socket.on('data', (chunk: Buffer) => this.onSocketData(chunk));
    socket.on('error', (err: Error) => this.destroy(err));
    socket.on('close', () => this.onSocketClose());
    socket.on('drain', () => this.unblockStreams());
    // The server ended its side: no response can complete any more (after our own graceful
    // close, or its GOAWAY with no stream left, that is the normal end).
    socket.on('end', () => (this.ending ? this.destroy() : this.destroy(new Error('the server closed the connection'))));
    this.queue(CLIENT_PREFACE);
    this.queue(
      settingsFrame([
        [SettingId.ENABLE_PUSH, 0],
        [SettingId.INITIAL_WINDOW_SIZE, this.opts.initialWindowSizeBytes],
        [SettingId.MAX_HEADER_LIST_SIZE, this.opts.maxHeaderListSizeBytes],
        [SettingId.HEADER_TABLE_SIZE, this.opts.headerTableSizeBytes],
      ]),
    );
    if (this.opts.connectionWindowSizeBytes > DEFAULT_WINDOW_BYTES) {
      this.queue(windowUpdateFrame(0, this.opts.connectionWindowSizeBytes - DEFAULT_WINDOW_BYTES));
    }
  }

  /** Open streams. */
  get openStreams(): number {
    return this.streams.size;
  }

  /** The connection is gone (or going after an error). */
  get destroyed(): boolean {
    return this.dead;
  }

  /** Streams the server allows open at once (its MAX_CONCURRENT_STREAMS, unlimited until it says). */
  get peerMaxStreams(): number {
    return this.peerMaxConcurrentStreams;
  }

  /** A new stream may be opened now: alive, no GOAWAY, under both stream limits, ids left. */
  get canOpen(): boolean {
    return (
      !this.dead &&
      !this.ending &&
      !this.goawayReceived &&
      !this.closing &&
      this.streams.size < this.peerMaxConcurrentStreams &&
      this.streams.size < this.opts.maxConcurrentStreams &&
      this.nextStreamId <= 2 ** 31 - 1
    );
  }

  /**
   * Opens a stream with an HPACK header block (HpackEncoder: no dynamic
   * table); `endStream` for a request without a body. Null when
   * {@link canOpen} is false.
   */
  request(headerBlock: Buffer, endStream = false): H2ClientStream | null {
    if (!this.canOpen) return null;
    const id = this.nextStreamId;
    this.nextStreamId += 2;
    const s = new H2ClientStream(this, id, this.opts.initialWindowSizeBytes, this.peerInitialWindow);
    this.streams.set(id, s);
    this.counters.streamsOpened++;
    this.queue(headersFrames(id, headerBlock, endStream, this.peerMaxFrameSize));
    if (endStream) s.writableEnded = true;
    return s;
  }

  /** Sends a PING; `cb(true)` on its ACK, `cb(false)` if the connection goes first. False when not sent. */
  ping(cb: (ok: boolean) => void): boolean {
    if (this.dead || this.pingCallbacks.length >= MAX_OUTSTANDING_PINGS) return false;
    const b = Buffer.alloc(FRAME_HEADER_BYTES + 8);
    writeFrameHeader(b, 0, 8, FrameType.PING, 0, 0);
    b.writeUInt32BE(++this.pingSeq >>> 0, FRAME_HEADER_BYTES + 4);
    this.pingCallbacks.push(cb);
    this.queue(b);
    return !this.dead;
  }

  /** Graceful close: GOAWAY NO_ERROR; streams in progress finish, then the socket ends. */
  close(): void {
    if (this.dead || this.ending) return;
    this.queue(goawayFrame(0, ErrorCode.NO_ERROR));
    this.closing = true;
    this.maybeFinish();
  }

  /** Destroys the socket at once; open streams close with CANCEL. */
  destroy(err?: Error): void {
    if (err !== undefined) this.error ??= err;
    this.dead = true;
    this.reader.stopped = true;
    this.closeAll(ErrorCode.CANCEL);
    this.failPings();
    this.out.length = 0;
    this.outBytes = 0;
    if (!this.socket.destroyed) this.socket.destroy();
  }

  // --- input ---------------------------------------------------------------

  private onSocketData(chunk: Buffer): void {
    if (this.dead) return;
    try {
      this.reader.push(chunk);
    } catch (e) {
      if (e instanceof H2ConnectionError || e instanceof HpackError) this.connectionError(e.code, e.message);
      else throw e;
    }
  }

  private onSocketClose(): void {
    this.dead = true;
    this.reader.stopped = true;
    this.error ??= this.ending ? null : new Error('the connection closed');
    this.closeAll(ErrorCode.CANCEL);
    this.failPings();
    this.counters.connectionsClosed++;
    const cb = this.onClose;
    this.onClose = null;
    cb?.(this.error);
  }

  /** @internal FrameSink */
  onFrame(type: number, flags: number, sid: number, p: Buffer): void {
    if (this.dead) return;
    if (this.headerBlocks.stream !== 0 && type !== FrameType.CONTINUATION) throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'frame inside a header block');
    if (!this.ready && (type !== FrameType.SETTINGS || (flags & Flag.ACK) !== 0)) throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'first frame is not SETTINGS');
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
        return;
      case FrameType.RST_STREAM:
        return this.onRstStream(sid, p);
      case FrameType.SETTINGS:
        return this.onSettings(flags, sid, p);
      case FrameType.PUSH_PROMISE:
        throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'PUSH_PROMISE with push disabled');
      case FrameType.PING:
        if (sid !== 0) throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'PING on a stream');
        if (p.length !== 8) throw new H2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'PING length');
        if ((flags & Flag.ACK) === 0) {
          this.counters.pingsReceived++;
          this.queue(pingAckFrame(p));
        } else {
          this.pingCallbacks.shift()?.(true);
        }
        return;
      case FrameType.GOAWAY:
        return this.onGoawayFrame(sid, p);
      case FrameType.WINDOW_UPDATE:
        return this.onWindowUpdate(sid, p);
      default:
        return;
    }
  }

  private onGoawayFrame(sid: number, p: Buffer): void {
    if (sid !== 0) throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'GOAWAY on a stream');
    if (p.length < 8) throw new H2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'GOAWAY length');
    const last = p.readUInt32BE(0) & 0x7fffffff;
    const code = p.readUInt32BE(4);
    this.counters.goawaysReceived++;
    this.goawayReceived = true;
    // A later GOAWAY may only lower last-stream-id.
    if (last < this.goawayLastStreamId) this.goawayLastStreamId = last;
    this.goawayCode = code;
    // Streams above last-stream-id were never processed: closed as refused (retryable).
    for (const s of [...this.streams.values()]) {
      if (s.id > this.goawayLastStreamId) {
        s.refused = true;
        this.counters.streamsRefusedByGoaway++;
        this.closeStream(s, ErrorCode.REFUSED_STREAM);
      }
    }
    this.onGoaway?.(last, code);
    this.maybeFinish();
  }

  private onSettings(flags: number, sid: number, p: Buffer): void {
    if (sid !== 0) throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'SETTINGS on a stream');
    if ((flags & Flag.ACK) !== 0) {
      if (p.length !== 0) throw new H2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'SETTINGS ACK with payload');
      return;
    }
    if (p.length % 6 !== 0) throw new H2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'SETTINGS length');
    let initialWindow = -1;
    for (let off = 0; off < p.length; off += 6) {
      const id = p.readUInt16BE(off);
      const v = p.readUInt32BE(off + 2);
      switch (id) {
        case SettingId.ENABLE_PUSH:
          // RFC 9113 §6.5.2: a server must not send 1.
          if (v !== 0) throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'ENABLE_PUSH from a server');
          break;
        case SettingId.INITIAL_WINDOW_SIZE:
          if (v > MAX_WINDOW_BYTES) throw new H2ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, 'INITIAL_WINDOW_SIZE');
          initialWindow = v;
          break;
        case SettingId.MAX_FRAME_SIZE:
          if (v < MIN_MAX_FRAME_SIZE_BYTES || v > MAX_MAX_FRAME_SIZE_BYTES) throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'MAX_FRAME_SIZE');
          this.peerMaxFrameSize = v;
          break;
        case SettingId.MAX_CONCURRENT_STREAMS:
          this.peerMaxConcurrentStreams = v;
          break;
        default:
          break; // HEADER_TABLE_SIZE: our encoder never uses the dynamic table. Others: advisory.
      }
    }
    if (initialWindow >= 0) this.applyInitialWindow(initialWindow);
    this.queue(SETTINGS_ACK_FRAME);
    if (!this.ready) {
      this.ready = true;
      this.onReady?.();
    }
  }

  private onRstStream(sid: number, p: Buffer): void {
    if (p.length !== 4) throw new H2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'RST_STREAM length');
    if (sid === 0) throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'RST_STREAM on stream 0');
    if (sid >= this.nextStreamId) throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'RST_STREAM on an idle stream');
    this.counters.resetsReceived++;
    const s = this.streams.get(sid);
    if (s !== undefined) this.closeStream(s, p.readUInt32BE(0));
  }

  private noteEmptyFrame(): void {
    if (this.emptyFrames.hit()) {
      this.counters.emptyFrameFloods++;
      throw new H2ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, 'too many empty frames');
    }
  }

  /** The server broke the protocol on one stream: reset it, note why. */
  private streamError(s: H2ClientStream, code: number, why: string): void {
    s.localError ??= why;
    this.resetStream(s, code);
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
      if (sid >= this.nextStreamId) throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'DATA on an idle stream');
      this.creditConnection(flowLen);
      return;
    }
    if (!s.responded) {
      this.creditConnection(flowLen);
      this.counters.malformedResponses++;
      return this.streamError(s, ErrorCode.PROTOCOL_ERROR, 'DATA before its response headers');
    }
    if (s.readableEnded) {
      this.creditConnection(flowLen);
      return this.streamError(s, ErrorCode.STREAM_CLOSED, 'DATA after END_STREAM');
    }
    if (flowLen > s.recvWindow) {
      this.creditConnection(flowLen);
      return this.streamError(s, ErrorCode.FLOW_CONTROL_ERROR, 'more DATA than its window');
    }
    s.recvWindow -= flowLen;
    if (data.length === 0 && !endStream) this.noteEmptyFrame();
    const padBytes = flowLen - data.length;
    if (padBytes > 0) this.consumed(s, padBytes);
    if (endStream) s.readableEnded = true;
    if (s.onData !== null && !s.paused && s.inQueue === null) {
      if (data.length > 0 || endStream) s.onData(data, endStream);
      if (data.length > 0 && !s.closed) this.consumed(s, data.length);
      else if (data.length > 0) this.creditConnection(data.length);
    } else {
      if (data.length > 0) {
        if (s.inQueue === null) s.inQueue = youngList();
        s.inQueue.push(Buffer.from(data));
        s.inQueuedBytes += data.length;
      }
      if (endStream) s.inEndPending = true;
    }
    if (endStream) this.maybeCloseStream(s);
  }

  protected override afterDeliver(s: H2ClientStream): void {
    if (!s.closed) this.maybeCloseStream(s);
  }

  private onHeadersFrame(flags: number, sid: number, p: Buffer): void {
    if (sid === 0 || (sid & 1) === 0) throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, `HEADERS on stream ${sid}`);
    if (sid >= this.nextStreamId) throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, `HEADERS on idle stream ${sid}`);
    const frag = HeaderBlockAssembler.fragment(flags, p);
    const endStream = (flags & Flag.END_STREAM) !== 0;
    if ((flags & Flag.END_HEADERS) !== 0) return this.onHeaderBlock(sid, frag, endStream);
    this.headerBlocks.start(sid, frag, endStream);
  }

  private onContinuation(flags: number, sid: number, p: Buffer): void {
    const block = this.headerBlocks.continuation(flags, sid, p);
    if (block !== null) this.onHeaderBlock(sid, block, this.headerBlocks.endStream);
  }

  private onHeaderBlock(sid: number, block: Buffer, endStream: boolean): void {
    // Born young (see youngList): a long-lived stream's list must not get this site pretenured for every other stream's.
    const list: string[] = youngList();
    // Always decode: the HPACK table must stay in sync even for streams we closed.
    const fits = this.decoder.decode(block, list);
    const s = this.streams.get(sid);
    if (s === undefined) return; // a stream we closed or reset
    if (!fits) {
      this.counters.headerListTooLarge++;
      return this.streamError(s, ErrorCode.PROTOCOL_ERROR, `a header list above ${this.opts.maxHeaderListSizeBytes} bytes`);
    }
    if (s.readableEnded) return this.streamError(s, ErrorCode.STREAM_CLOSED, 'HEADERS after END_STREAM');
    if (!s.responded) {
      // Response headers: :status first, the only pseudo-header; regular fields as RFC 9113 §8.2
      // wants them (they are relayed: a CR LF or a bad name must not reach the relay's client).
      let status = 0;
      for (let i = 0; i < list.length; i += 2) {
        const name = list[i]!;
        if (name.charCodeAt(0) !== 58) {
          if (!validRegularField(name, list[i + 1]!)) {
            this.counters.malformedResponses++;
            return this.streamError(s, ErrorCode.PROTOCOL_ERROR, 'malformed response headers');
          }
          continue;
        }
        const v = list[i + 1]!;
        if (name !== ':status' || i !== 0 || status !== 0 || !/^[1-9][0-9][0-9]$/.test(v)) {
          this.counters.malformedResponses++;
          return this.streamError(s, ErrorCode.PROTOCOL_ERROR, 'malformed response headers');
        }
        status = Number(v);
      }
      if (status === 0) {
        this.counters.malformedResponses++;
        return this.streamError(s, ErrorCode.PROTOCOL_ERROR, 'response headers without :status');
      }
      if (status < 200) {
        // Informational (1xx): another HEADERS follows; one with END_STREAM is malformed.
        if (endStream) {
          this.counters.malformedResponses++;
          return this.streamError(s, ErrorCode.PROTOCOL_ERROR, 'an informational response with END_STREAM');
        }
        return;
      }
      s.responded = true;
      s.status = status;
      if (endStream) s.readableEnded = true;
      s.onResponse?.(list, endStream);
      if (s.closed) return;
      if (endStream) {
        if (s.onData !== null && !s.paused) {
          s.onData(EMPTY, true);
          if (s.closed) return;
        } else {
          s.inEndPending = true;
        }
        this.maybeCloseStream(s);
      }
      return;
    }
    // Trailers.
    if (!endStream) return this.streamError(s, ErrorCode.PROTOCOL_ERROR, 'a second header block without END_STREAM');
    for (let i = 0; i < list.length; i += 2) {
      if (list[i]!.charCodeAt(0) === 58 || !validRegularField(list[i]!, list[i + 1]!)) {
        this.counters.malformedResponses++;
        return this.streamError(s, ErrorCode.PROTOCOL_ERROR, 'malformed trailers');
      }
    }
    s.readableEnded = true;
    s.onTrailers?.(list);
    if (s.closed) return;
    if (s.onData !== null && !s.paused && s.inQueue === null) {
      s.onData(EMPTY, true);
      if (s.closed) return;
    } else {
      s.inEndPending = true;
    }
    this.maybeCloseStream(s);
  }

  // --- output ----------------------------------------------------------------

  /** @internal */
  writeData(s: H2ClientStream, chunk: Buffer, end: boolean): boolean {
    return this.enqueueData(s, chunk, end);
  }

  /** END_STREAM on our last DATA frame if it is still queued, else on an empty DATA frame. */
  protected finishOutput(s: H2ClientStream): void {
    const h = s.lastDataHeader;
    if (h !== null && s.lastDataGen === this.flushGen) {
      h[4] = h[4]! | Flag.END_STREAM;
    } else {
      const f = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
      writeFrameHeader(f, 0, 0, FrameType.DATA, Flag.END_STREAM, s.id);
      this.queue(f);
    }
    s.lastDataHeader = null;
    this.localEnded(s);
  }

  protected outputEnded(s: H2ClientStream): void {
    this.localEnded(s);
  }

  protected outputOverflow(): void {
    this.counters.outputOverflows++;
    this.destroy(new Error(`more than ${this.opts.maxQueuedOutputBytes} bytes of output queued (the server does not read)`));
  }

  protected streamOutputOverflow(): void {
    this.counters.streamOutputOverflows++;
  }

  protected windowUpdateError(s: H2ClientStream, code: number): void {
    this.streamError(s, code, 'a bad WINDOW_UPDATE');
  }

  protected isIdleStream(sid: number): boolean {
    return sid >= this.nextStreamId;
  }

  /** Our END_STREAM is queued: close if the response is complete and delivered. */
  private localEnded(s: H2ClientStream): void {
    this.maybeCloseStream(s);
  }

  /**
   * Closes a stream whose response is complete and delivered. A request the
   * server no longer reads (it answered before our END_STREAM) is ended with
   * RST_STREAM NO_ERROR, so the server's side of the stream closes too.
   */
  private maybeCloseStream(s: H2ClientStream): void {
    if (s.closed || !s.readableEnded || s.inQueue !== null || s.inEndPending) return;
    if (s.writableEnded && !s.pendingEnd && s.pendingBytes === 0) {
      this.closeStream(s, ErrorCode.NO_ERROR);
    } else {
      s.writableEnded = true;
      this.queue(rstStreamFrame(s.id, ErrorCode.NO_ERROR));
      this.closeStream(s, ErrorCode.NO_ERROR);
    }
  }

  protected streamClosed(s: H2ClientStream, code: number): void {
    s.rstCode = code;
    s.lastDataHeader = null;
    const cb = s.onClose;
    s.onClose = null;
    s.onResponse = null;
    s.onTrailers = null;
    if (cb !== null) cb.call(s, code);
  }

  protected streamsEmptied(): void {
    this.maybeFinish();
  }

  private closeAll(code: number): void {
    if (this.streams.size === 0) return;
    for (const s of [...this.streams.values()]) this.closeStream(s, code);
  }

  private failPings(): void {
    const cbs = this.pingCallbacks;
    this.pingCallbacks = [];
    for (const cb of cbs) cb(false);
  }

  /** After a GOAWAY (ours or the server's) with no stream left: flush and end the socket. */
  private maybeFinish(): void {
    if (this.ending || this.streams.size > 0 || (!this.goawayReceived && !this.closing)) return;
    this.ending = true;
    this.scheduleFlushIfNeeded();
  }

  /** The server broke the protocol: GOAWAY `code`, close streams, end the socket. */
  private connectionError(code: number, message: string): void {
    if (this.dead) return;
    this.counters.goawayByCode[code] = (this.counters.goawayByCode[code] ?? 0) + 1;
    this.error ??= new Error(`HTTP/2 protocol error from the server: ${message}`);
    this.reader.stopped = true;
    const frame = goawayFrame(0, code, message);
    this.out.push(frame);
    this.outBytes += frame.length;
    this.dead = true;
    this.ending = true;
    this.closeAll(code);
    this.failPings();
    this.flushScheduled = true;
    this.flush();
  }
}

// ---------------------------------------------------------------------------
// Connect helper

/** Options of connectH2: client options, plus TLS to the server (ALPN h2 required). */
export interface H2ConnectOptions extends H2ClientOptions {
  /** Connect over TLS, verifying the server against `ca` (the system's roots when undefined). */
  tls?: { ca?: Buffer | string | undefined; servername?: string };
}

/** Splits "host:port" / "[v6]:port". @throws Error for an address without a port. */
export function splitHostPort(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  const port = Number(address.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535) throw new Error(`not a host:port address: ${address}`);
  let host = address.slice(0, colon);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return { host, port };
}

/**
 * Connects to `address` ("host:port") and returns the connection at once:
 * its preface and SETTINGS go out when the socket connects; a failure to
 * connect (or a TLS peer without ALPN h2) closes it with `error` set.
 */
export function connectH2(address: string, options: H2ConnectOptions = {}, counters?: H2ClientCounters): H2ClientConnection {
  const { tls: tlsOptions, ...h2 } = options;
  const { host, port } = splitHostPort(address);
  let socket: net.Socket;
  if (tlsOptions !== undefined) {
    const servername = tlsOptions.servername ?? (net.isIP(host) === 0 ? host : undefined);
    const t = tls.connect({ host, port, ca: tlsOptions.ca, ALPNProtocols: ['h2'], ...(servername !== undefined ? { servername } : {}) });
    t.once('secureConnect', () => {
      if (t.alpnProtocol !== 'h2') t.destroy(new Error(`${address} did not negotiate HTTP/2 (ALPN h2)`));
    });
    socket = t;
  } else {
    socket = net.connect({ host, port });
  }
  socket.setNoDelay(true);
  return new H2ClientConnection(socket, h2, counters);
}

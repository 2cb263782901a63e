/**
 * What the server's and the client's HTTP/2 connections have in common
 * (src/h2/server.ts, src/h2/client.ts): the output queue written once per
 * event-loop turn, DATA sent under the peer's windows with backpressure
 * (write() false, onDrain), input delivered to the consumer and its windows
 * given back as it reads (pause/resume), WINDOW_UPDATE and
 * INITIAL_WINDOW_SIZE bookkeeping, and the output bounds.
 */
import type * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { DEFAULT_WINDOW_BYTES, ErrorCode, Flag, FRAME_HEADER_BYTES, FrameType, H2ConnectionError, MAX_WINDOW_BYTES, MIN_MAX_FRAME_SIZE_BYTES, rstStreamFrame, windowUpdateFrame, writeFrameHeader, youngList } from './frames.js';

/** Largest DATA frame we send (when the peer allows larger ones). */
const MAX_DATA_FRAME_BYTES = 65536;
/** Time a closing connection waits for its socket to flush before destroying it. */
const CLOSE_LINGER_MS = 1000;
/** An empty chunk (end of input without data). */
export const EMPTY = Buffer.alloc(0);

/** @internal The flow-control and buffering state of a stream, on both sides. */
export abstract class FlowStream {
  /** Body callback, set through read(). */
  onData: ((chunk: Buffer, endStream: boolean) => void) | null = null;
  /** write() returned false and the buffered output is below the high-water mark again. */
  onDrain: (() => void) | null = null;
  /** The peer ended its side (END_STREAM received). */
  readableEnded = false;
  /** The stream is closed (both ends, or reset). */
  closed = false;

  /** @internal */ recvWindow: number;
  /** @internal */ recvUnacked = 0;
  /** @internal */ sendWindow: number;
  /** @internal */ paused = false;
  /** @internal */ inQueue: Buffer[] | null = null;
  /** @internal */ inQueuedBytes = 0;
  /** @internal */ inEndPending = false;
  /** @internal */ pending: Buffer[] | null = null;
  /** @internal */ pendingOff = 0;
  /** @internal */ pendingBytes = 0;
  /** @internal */ pendingEnd = false;
  /** @internal */ needDrain = false;
  /** @internal */ blocked = false;
  /** @internal The header of our last DATA frame, while it is still queued (lastDataGen): END_STREAM can be set on it. */
  lastDataHeader: Buffer | null = null;
  /** @internal */ lastDataGen = -1;

  constructor(
    /** Stream id. */
    readonly id: number,
    recvWindow: number,
    sendWindow: number,
  ) {
    this.recvWindow = recvWindow;
    this.sendWindow = sendWindow;
  }

  /** Input received but not yet delivered (paused, or no read() yet): at most the stream window. */
  get bufferedInputBytes(): number {
    return this.inQueuedBytes;
  }

  /** Unsent output held by this stream. */
  get bufferedBytes(): number {
    return this.pendingBytes;
  }
}

/** @internal The option fields the shared part reads (both sides' resolved options have them). */
export interface FlowLimits {
  readonly initialWindowSizeBytes: number;
  readonly connectionWindowSizeBytes: number;
  readonly maxQueuedOutputBytes: number;
  readonly maxStreamBufferedOutputBytes: number;
  readonly streamHighWaterMarkBytes: number;
}

/** @internal The shared part of H2Connection (server) and H2ClientConnection. */
export abstract class H2Session<S extends FlowStream> {
  /** Open streams by id. */
  protected readonly streams = new Map<number, S>();
  /** The connection is gone (or going after a connection error): nothing more is queued. */
  protected dead = false;
  /** The socket ends at the next flush. */
  protected ending = false;
  protected sendWindow = DEFAULT_WINDOW_BYTES;
  protected peerInitialWindow = DEFAULT_WINDOW_BYTES;
  protected peerMaxFrameSize = MIN_MAX_FRAME_SIZE_BYTES;
  protected recvWindow: number;
  protected recvUnacked = 0;
  protected blockedStreams: S[] = youngList();
  /** Queued output (ours + the socket's) above which DATA waits: a quarter of the output bound. */
  protected readonly dataHighWaterBytes: number;
  protected out: Buffer[] = youngList();
  protected outBytes = 0;
  protected flushScheduled = false;
  /** Incremented at every flush: a frame queued in this generation is still in `out`. */
  protected flushGen = 0;
  /**
   * END_STREAM goes on the DATA frame that carries a stream's last bytes
   * (the client: a unary request is HEADERS + one DATA frame). The server
   * ends its responses with trailers or an empty DATA frame (finishOutput).
   */
  protected abstract readonly endOnLastData: boolean;

  private readonly flushBound = (): void => this.flush();

  constructor(
    /** The connected socket. */
    readonly socket: Duplex,
    private readonly limits: FlowLimits,
  ) {
    this.recvWindow = limits.connectionWindowSizeBytes;
    this.dataHighWaterBytes = limits.maxQueuedOutputBytes >>> 2;
  }

  /** Queued output exceeded maxQueuedOutputBytes: count it and destroy the connection. */
  protected abstract outputOverflow(): void;
  /** A stream's unsent output exceeded maxStreamBufferedOutputBytes: count it (the stream is then reset). */
  protected abstract streamOutputOverflow(): void;
  /** A stream closed (see closeStream): the side's own fields cleared, its rstCode set and its onClose called. */
  protected abstract streamClosed(s: S, code: number): void;
  /** The last open stream closed. */
  protected abstract streamsEmptied(): void;
  /** A stream's pending output is all queued and its END_STREAM is due (trailers, or an empty DATA frame). */
  protected abstract finishOutput(s: S): void;
  /** END_STREAM went out on a stream's last DATA frame (endOnLastData). */
  protected abstract outputEnded(s: S): void;
  /** A stream that sent a bad WINDOW_UPDATE (increment 0, or above 2^31-1). */
  protected abstract windowUpdateError(s: S, code: number): void;
  /** A stream id the peer may not refer to yet. */
  protected abstract isIdleStream(sid: number): boolean;
  /** Called before each socket write (the server settles streams awaiting the peer's end). */
  protected beforeFlush(): void {}
  /** Called after deliverQueued (the client closes a stream whose response it has delivered). */
  protected afterDeliver(_s: S): void {}

  // --- input credit ------------------------------------------------------

  /** @internal Resets a stream: RST_STREAM to the peer and close. */
  resetStream(s: S, code: number): void {
    if (s.closed) return;
    this.queue(rstStreamFrame(s.id, code));
    this.closeStream(s, code);
  }

  /**
   * Closes a stream on both sides' terms: forgotten, the input the consumer
   * never took given back to the connection window (it still counted
   * against it), its queues dropped, its callbacks cleared; then the side's
   * own part (streamClosed: rstCode, onClose) and, with no stream left,
   * streamsEmptied.
   */
  protected closeStream(s: S, code: number): void {
    if (s.closed) return;
    s.closed = true;
    this.streams.delete(s.id);
    if (s.inQueuedBytes > 0) {
      this.creditConnection(s.inQueuedBytes);
      s.inQueuedBytes = 0;
    }
    s.inQueue = null;
    s.pending = null;
    s.pendingBytes = 0;
    s.onData = null;
    s.onDrain = null;
    this.streamClosed(s, code);
    if (this.streams.size === 0) this.streamsEmptied();
    this.scheduleFlushIfNeeded();
  }

  /** Input bytes of the connection taken by a consumer (or dropped): WINDOW_UPDATE at half the window. */
  protected creditConnection(n: number): void {
    this.recvUnacked += n;
    if (this.recvUnacked >= this.limits.connectionWindowSizeBytes >>> 1) {
      this.queue(windowUpdateFrame(0, this.recvUnacked));
      this.recvWindow += this.recvUnacked;
      this.recvUnacked = 0;
    }
  }

  /** The consumer took `n` bytes of stream `s`: credit the connection and the stream. */
  protected consumed(s: S, n: number): void {
    this.creditConnection(n);
    if (s.readableEnded || s.closed) return;
    s.recvUnacked += n;
    if (s.recvUnacked >= this.limits.initialWindowSizeBytes >>> 1) {
      this.queue(windowUpdateFrame(s.id, s.recvUnacked));
      s.recvWindow += s.recvUnacked;
      s.recvUnacked = 0;
    }
  }

  /** @internal Delivers queued input to onData (read()/resume()). */
  deliverQueued(s: S): void {
    const q = s.inQueue;
    if (s.onData === null) return;
    if (q !== null) {
      while (q.length > 0 && !s.paused && !s.closed) {
        const c = q.shift()!;
        s.inQueuedBytes -= c.length;
        const last = q.length === 0 && s.inEndPending;
        if (last) s.inEndPending = false;
        s.onData(c, last);
        if (!s.closed) this.consumed(s, c.length);
        else this.creditConnection(c.length);
      }
      if (q.length === 0) s.inQueue = null;
    }
    if (s.inQueue === null && s.inEndPending && !s.paused && !s.closed) {
      s.inEndPending = false;
      s.onData(EMPTY, true);
    }
    this.afterDeliver(s);
    this.scheduleFlushIfNeeded();
  }

  // --- windows -------------------------------------------------------------

  /** WINDOW_UPDATE from the peer. @throws H2ConnectionError */
  protected onWindowUpdate(sid: number, p: Buffer): void {
    if (p.length !== 4) throw new H2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'WINDOW_UPDATE length');
    const inc = p.readUInt32BE(0) & 0x7fffffff;
    if (sid === 0) {
      if (inc === 0) throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'WINDOW_UPDATE of 0');
      if (this.sendWindow + inc > MAX_WINDOW_BYTES) throw new H2ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, 'connection window overflow');
      this.sendWindow += inc;
      this.unblockStreams();
      return;
    }
    const s = this.streams.get(sid);
    if (s === undefined) {
      if (this.isIdleStream(sid)) throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'WINDOW_UPDATE on an idle stream');
      return; // A stream we closed: ignored.
    }
    if (inc === 0) return this.windowUpdateError(s, ErrorCode.PROTOCOL_ERROR);
    if (s.sendWindow + inc > MAX_WINDOW_BYTES) return this.windowUpdateError(s, ErrorCode.FLOW_CONTROL_ERROR);
    s.sendWindow += inc;
    if (s.pendingBytes > 0 || s.pendingEnd) this.pump(s);
  }

  /**
   * The peer's INITIAL_WINDOW_SIZE (the frame's last value: a frame
   * repeating it 2,730 times must not cost 2,730 passes over the streams).
   * @throws H2ConnectionError
   */
  protected applyInitialWindow(v: number): void {
    if (v === this.peerInitialWindow) return;
    const delta = v - this.peerInitialWindow;
    this.peerInitialWindow = v;
    for (const s of this.streams.values()) {
      s.sendWindow += delta;
      if (s.sendWindow > MAX_WINDOW_BYTES) throw new H2ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, 'stream window overflow');
    }
    if (delta > 0) for (const s of [...this.streams.values()]) if (s.pendingBytes > 0 || s.pendingEnd) this.pump(s);
  }

  // --- output ----------------------------------------------------------------

  /** Queues a stream's output bytes (and its end); false when the caller should wait for onDrain. */
  protected enqueueData(s: S, chunk: Buffer, end: boolean): boolean {
    if (chunk.length > 0) {
      if (s.pending === null) s.pending = youngList();
      s.pending.push(chunk);
      s.pendingBytes += chunk.length;
      if (s.pendingBytes > this.limits.maxStreamBufferedOutputBytes) {
        this.streamOutputOverflow();
        this.resetStream(s, ErrorCode.CANCEL);
        return false;
      }
    }
    if (end) s.pendingEnd = true;
    this.pump(s);
    if (s.pendingBytes >= this.limits.streamHighWaterMarkBytes) {
      s.needDrain = true;
      return false;
    }
    return true;
  }

  /** Retries streams held back by the connection window or a backed-up socket. */
  protected unblockStreams(): void {
    if (this.blockedStreams.length === 0 || this.dead) return;
    const list = this.blockedStreams;
    this.blockedStreams = youngList();
    for (const s of list) {
      s.blocked = false;
      if (!s.closed) this.pump(s);
    }
  }

  /**
   * Sends what the windows allow of a stream's pending output; then its
   * END_STREAM. DATA is also held back while the connection's queued output
   * is at its high-water mark, so a slow reader with large windows backs up
   * into the streams (write() returning false) rather than into the
   * connection's output bound, which is for control frames.
   */
  protected pump(s: S): void {
    const q = s.pending;
    while (q !== null && s.pendingBytes > 0) {
      let allow = s.sendWindow < this.sendWindow ? s.sendWindow : this.sendWindow;
      if (allow <= 0) break;
      if (this.outBytes + this.socket.writableLength >= this.dataHighWaterBytes) {
        if (!s.blocked) {
          s.blocked = true;
          this.blockedStreams.push(s);
        }
        break;
      }
      // Frames beyond 64 KiB buy nothing and would let a peer's huge MAX_FRAME_SIZE push one
      // frame past the output bound.
      const maxFrame = this.peerMaxFrameSize < MAX_DATA_FRAME_BYTES ? this.peerMaxFrameSize : MAX_DATA_FRAME_BYTES;
      if (allow > maxFrame) allow = maxFrame;
      const c = q[0]!;
      const left = c.length - s.pendingOff;
      const n = left < allow ? left : allow;
      const last = this.endOnLastData && s.pendingEnd && n === s.pendingBytes;
      const hdr = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
      writeFrameHeader(hdr, 0, n, FrameType.DATA, last ? Flag.END_STREAM : 0, s.id);
      this.queue(hdr);
      this.queue(n === c.length ? c : c.subarray(s.pendingOff, s.pendingOff + n));
      if (this.dead) return;
      s.lastDataHeader = hdr;
      s.lastDataGen = this.flushGen;
      s.pendingOff += n;
      s.pendingBytes -= n;
      s.sendWindow -= n;
      this.sendWindow -= n;
      if (s.pendingOff === c.length) {
        q.shift();
        s.pendingOff = 0;
      }
      if (last) {
        s.pendingEnd = false;
        s.pending = null;
        s.lastDataHeader = null;
        this.outputEnded(s);
        return;
      }
    }
    if (s.pendingBytes > 0) {
      if (this.sendWindow <= 0 && s.sendWindow > 0 && !s.blocked) {
        s.blocked = true;
        this.blockedStreams.push(s);
      }
    } else if (s.pendingEnd) {
      s.pendingEnd = false;
      s.pending = null;
      this.finishOutput(s);
      s.lastDataHeader = null;
      return;
    }
    if (s.needDrain && s.pendingBytes < this.limits.streamHighWaterMarkBytes) {
      s.needDrain = false;
      s.onDrain?.();
    }
  }

  /** Our queued output plus the socket's. */
  protected queuedOutputBytes(): number {
    return this.outBytes + this.socket.writableLength;
  }

  protected queue(buf: Buffer): void {
    if (this.dead) return;
    this.out.push(buf);
    this.outBytes += buf.length;
    if (this.outBytes + this.socket.writableLength > this.limits.maxQueuedOutputBytes) {
      this.outputOverflow();
      return;
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushBound);
    }
  }

  protected scheduleFlushIfNeeded(): void {
    if (!this.flushScheduled && (this.outBytes > 0 || this.ending)) {
      this.flushScheduled = true;
      setImmediate(this.flushBound);
    }
  }

  /** Writes the queued output in one socket write (or a corked run of them above 64 KiB). */
  protected flush(): void {
    this.flushScheduled = false;
    this.flushGen++;
    if (this.dead && !this.ending) return;
    this.beforeFlush();
    const out = this.out;
    if (out.length > 0 && !this.socket.destroyed) {
      if (out.length === 1) this.socket.write(out[0]!);
      else if (this.outBytes <= 65536) this.socket.write(Buffer.concat(out, this.outBytes));
      else {
        (this.socket as net.Socket).cork?.();
        for (const b of out) this.socket.write(b);
        (this.socket as net.Socket).uncork?.();
      }
    }
    // A new list per flush, born young (see youngList): the socket may still hold the buffers.
    this.out = youngList();
    this.outBytes = 0;
    if (this.blockedStreams.length > 0 && this.socket.writableLength < this.dataHighWaterBytes) this.unblockStreams();
    if (this.ending && !this.socket.destroyed) {
      this.socket.end();
      const t = setTimeout(() => this.socket.destroy(), CLOSE_LINGER_MS);
      t.unref();
    }
  }
}

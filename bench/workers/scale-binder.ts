/**
 * Bind load for the scale benchmark: new rebind-aware clients (each a
 * distinct client id, so each request is a real bind, not a cache hit)
 * calling the balancer's data port for the first time, each answered with a
 * Trailers-Only forward.
 *
 * Two ways to send them (`mode` of a `binds` request):
 *  - `raw` (default): HTTP/2 frames written straight to a TCP socket. The
 *    request frames are one template per connection with the stream id and
 *    client id patched in, all binds due in a timer tick go out in one
 *    write, and a response is only framed (a HEADERS frame with END_STREAM
 *    on its stream is a Trailers-Only answer), not HPACK-decoded; the
 *    orchestrator checks the count against the balancer's own
 *    rebind_binds_total. A few µs of CPU per bind.
 *  - `http2`: node:http2 client streams, as before (tens of µs per bind).
 *
 * A bind's latency runs from the moment it was written (binds due within a
 * tick of TICK_MS go out together; the tick's batching is not the
 * balancer's latency). Sending late is not hidden either: binds written more
 * than lateMs after they were due are counted, and the orchestrator marks
 * such a point generator-limited. The worker also reports what it cost
 * itself: CPU over the window and event-loop delay p99.
 *   binds rate durationMs [mode] [lateMs]
 *                                  replies with ok, failed, sent, late (binds
 *                                  written more than lateMs after due),
 *                                  cpu_us, eld_p99_ms and an HDR histogram
 */
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { randomBytes } from 'node:crypto';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { encodeHistogram, histogram } from '../lib/common';
import { fatal, flag, send, serve } from './worker-util';

const target = flag('target');
const path = flag('path', '/scale.Service/Call');
const CONNECTIONS = 4;
/** Longest wait between two scheduling ticks (ms): due binds are sent in batches at most this old. */
const TICK_MS = 2;
const prefix = randomBytes(4).toString('hex');
let counter = 0;
const EMPTY_MESSAGE = Buffer.from([0, 0, 0, 0, 0]);
/** Client ids are prefix (8 hex) + counter (8 base-36 digits): distinct across a run, 16 characters. */
const ID_CHARS = 16;
function nextClientId(): string {
  return `${prefix}${(counter++).toString(36).padStart(8, '0')}`;
}
const USER_AGENT_HEAD = 'grpc-node-js/1.14 rebind/1 rebind-cid/';

type Done = (ok: boolean) => void;

// ---- raw HTTP/2 ----

/** HPACK integer with an n-bit prefix (RFC 7541 5.1). */
function hpackInt(value: number, prefixBits: number, first: number): number[] {
  const max = (1 << prefixBits) - 1;
  if (value < max) return [first | value];
  const out = [first | max];
  let v = value - max;
  while (v >= 128) {
    out.push((v & 127) | 128);
    v >>= 7;
  }
  out.push(v);
  return out;
}
/** Literal header field without indexing, name from the static table (`index`), raw (non-Huffman) value. */
function literalIndexedName(index: number, value: string): number[] {
  return [...hpackInt(index, 4, 0), ...hpackInt(value.length, 7, 0), ...Buffer.from(value, 'latin1')];
}
function literalNewName(name: string, value: string): number[] {
  return [0, ...hpackInt(name.length, 7, 0), ...Buffer.from(name, 'latin1'), ...hpackInt(value.length, 7, 0), ...Buffer.from(value, 'latin1')];
}
function frameHeader(length: number, type: number, flags: number, streamId: number): Buffer {
  const b = Buffer.alloc(9);
  b.writeUIntBE(length, 0, 3);
  b[3] = type;
  b[4] = flags;
  b.writeUInt32BE(streamId, 5);
  return b;
}
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const FRAME_DATA = 0;
const FRAME_HEADERS = 1;
const FRAME_RST_STREAM = 3;
const FRAME_SETTINGS = 4;
const FRAME_PING = 6;
const FRAME_GOAWAY = 7;
const FLAG_END_STREAM = 1;
const FLAG_ACK = 1;
const FLAG_END_HEADERS = 4;
const SETTINGS_MAX_CONCURRENT_STREAMS = 3;

/** One bind's frames with placeholders: HEADERS (stream id, client id patched in) + DATA (empty gRPC message, END_STREAM). */
function requestTemplate(): { bytes: Buffer; idOffset: number; headersSid: number; dataSid: number } {
  const block = Buffer.from([
    0x83, // :method POST
    0x86, // :scheme http
    ...literalIndexedName(4, path),
    ...literalIndexedName(1, target),
    ...literalIndexedName(31, 'application/grpc'),
    ...literalNewName('te', 'trailers'),
    ...literalIndexedName(58, USER_AGENT_HEAD + 'x'.repeat(ID_CHARS)),
  ]);
  const headers = Buffer.concat([frameHeader(block.length, FRAME_HEADERS, FLAG_END_HEADERS, 0), block]);
  const data = Buffer.concat([frameHeader(EMPTY_MESSAGE.length, FRAME_DATA, FLAG_END_STREAM, 0), EMPTY_MESSAGE]);
  return { bytes: Buffer.concat([headers, data]), idOffset: headers.length - ID_CHARS, headersSid: 5, dataSid: headers.length + 5 };
}
const TEMPLATE = requestTemplate();

class RawConnection {
  private readonly socket: net.Socket;
  private pending: Buffer | null = null;
  private nextStreamId = 1;
  private readonly inFlight = new Map<number, Done>();
  maxConcurrent = 100;
  closed = false;

  constructor() {
    const [host, port] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
    this.socket = net.connect({ host, port, noDelay: true });
    this.socket.on('error', () => this.close());
    this.socket.on('close', () => this.close());
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    // Preface, then our SETTINGS (no push).
    const settings = Buffer.alloc(6);
    settings.writeUInt16BE(2, 0);
    settings.writeUInt32BE(0, 2);
    this.socket.write(Buffer.concat([PREFACE, frameHeader(6, FRAME_SETTINGS, 0, 0), settings]));
  }

  get free(): number {
    return this.closed ? 0 : this.maxConcurrent - this.inFlight.size;
  }

  /** Writes `count` binds in one write; `done` is called once per bind. */
  send(count: number, done: Done): void {
    const t = TEMPLATE.bytes;
    const out = Buffer.allocUnsafe(t.length * count);
    for (let k = 0; k < count; k++) {
      const at = k * t.length;
      t.copy(out, at);
      const sid = this.nextStreamId;
      this.nextStreamId += 2;
      out.writeUInt32BE(sid, at + TEMPLATE.headersSid);
      out.writeUInt32BE(sid, at + TEMPLATE.dataSid);
      out.write(nextClientId(), at + TEMPLATE.idOffset, ID_CHARS, 'latin1');
      this.inFlight.set(sid, done);
    }
    this.socket.write(out);
  }

  private onData(chunk: Buffer): void {
    let buf = this.pending === null ? chunk : Buffer.concat([this.pending, chunk]);
    while (buf.length >= 9) {
      const length = buf.readUIntBE(0, 3);
      if (buf.length < 9 + length) break;
      const type = buf[3]!;
      const flags = buf[4]!;
      const sid = buf.readUInt32BE(5) & 0x7fffffff;
      const payload = buf.subarray(9, 9 + length);
      buf = buf.subarray(9 + length);
      if (type === FRAME_HEADERS || type === FRAME_DATA) {
        // A Trailers-Only answer (the forward) is one HEADERS frame that ends the stream.
        if ((flags & FLAG_END_STREAM) !== 0) this.finish(sid, type === FRAME_HEADERS);
      } else if (type === FRAME_RST_STREAM) {
        this.finish(sid, false);
      } else if (type === FRAME_SETTINGS && (flags & FLAG_ACK) === 0) {
        for (let i = 0; i + 6 <= payload.length; i += 6) if (payload.readUInt16BE(i) === SETTINGS_MAX_CONCURRENT_STREAMS) this.maxConcurrent = payload.readUInt32BE(i + 2);
        this.socket.write(frameHeader(0, FRAME_SETTINGS, FLAG_ACK, 0));
      } else if (type === FRAME_PING && (flags & FLAG_ACK) === 0) {
        this.socket.write(Buffer.concat([frameHeader(8, FRAME_PING, FLAG_ACK, 0), payload]));
      } else if (type === FRAME_GOAWAY) {
        this.close();
      }
    }
    this.pending = buf.length > 0 ? Buffer.from(buf) : null;
  }

  private finish(sid: number, ok: boolean): void {
    const done = this.inFlight.get(sid);
    if (done === undefined) return;
    this.inFlight.delete(sid);
    done(ok);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    for (const done of this.inFlight.values()) done(false);
    this.inFlight.clear();
  }
}

// ---- node:http2 ----

function connect(): http2.ClientHttp2Session {
  const session = http2.connect(`http://${target}`);
  session.on('error', () => undefined);
  return session;
}
let sessions: http2.ClientHttp2Session[] | null = null;

function http2Bind(done: Done): void {
  sessions ??= Array.from({ length: CONNECTIONS }, connect);
  const slot = counter % CONNECTIONS;
  if (sessions[slot]!.destroyed || sessions[slot]!.closed) sessions[slot] = connect();
  const stream = sessions[slot]!.request({
    ':method': 'POST',
    ':path': path,
    'content-type': 'application/grpc',
    te: 'trailers',
    'user-agent': USER_AGENT_HEAD + nextClientId(),
  });
  // A Trailers-Only answer ends the stream; like a gRPC client, never reset it (a flood of
  // RST_STREAMs is what HTTP/2 servers cut off as a rapid-reset attack).
  stream.on('response', (headers) => done(headers['grpc-status'] === '10' && typeof headers['rebind-forward'] === 'string'));
  stream.resume();
  stream.on('error', () => done(false));
  stream.end(EMPTY_MESSAGE);
}

let raw: RawConnection[] = [];
function rawConnections(): RawConnection[] {
  raw = raw.filter((c) => !c.closed);
  while (raw.length < CONNECTIONS) raw.push(new RawConnection());
  return raw;
}

serve(async (m) => {
  if (m.type !== 'binds') throw new Error(`unknown request ${m.type}`);
  const rate = Number(m['rate']);
  const durationMs = Number(m['durationMs']);
  const mode = m['mode'] === 'http2' ? 'http2' : 'raw';
  const lateMs = m['lateMs'] === undefined ? 20 : Number(m['lateMs']);
  if (mode === 'raw') {
    rawConnections();
    await new Promise((r) => setTimeout(r, 50)); // the connections' SETTINGS exchange
  }
  const h = histogram();
  let ok = 0;
  let failed = 0;
  let late = 0;
  let completed = 0;
  const period = 1000 / rate;
  const offered = Math.floor(durationMs / period);
  const eld = monitorEventLoopDelay({ resolution: 10 });
  eld.enable();
  const cpu0 = process.cpuUsage();
  const begin = performance.now();
  let sent = 0;
  let allDone: () => void = () => undefined;
  const finished = new Promise<void>((r) => (allDone = r));
  /** One completion; `sentAt`: when the bind was written (latency is counted from there). */
  const complete = (sentAt: number, good: boolean) => {
    if (good) {
      ok++;
      h.recordValue(Math.max(1, Math.round((performance.now() - sentAt) * 1000)));
    } else {
      failed++;
    }
    if (++completed === offered) allDone();
  };
  let rr = 0;
  while (sent < offered) {
    const now = performance.now();
    const due = Math.min(Math.floor((now - begin) / period) + 1, offered);
    if (due > sent) {
      // Late: written more than lateMs after it was due (the loop was busy or descheduled).
      const batch = due - sent;
      for (let i = 0; i < batch; i++) if (now - (begin + (sent + i) * period) > lateMs) late++;
      if (mode === 'raw') {
        const conns = rawConnections();
        let left = batch;
        // Spread the batch over the connections.
        for (let c = 0; c < conns.length && left > 0; c++) {
          const conn = conns[(rr++ + c) % conns.length]!;
          const n = Math.min(Math.ceil(left / (conns.length - c)), Math.max(0, conn.free));
          if (n === 0) continue;
          const sentAt = performance.now();
          conn.send(n, (good) => complete(sentAt, good));
          left -= n;
        }
        // Streams full on every connection (the balancer is slow): counted as failed, not queued forever.
        for (; left > 0; left--) complete(0, false);
      } else {
        for (let i = 0; i < batch; i++) {
          const sentAt = performance.now();
          http2Bind((good) => complete(sentAt, good));
        }
      }
      sent = due;
    }
    await new Promise((r) => setTimeout(r, Math.max(0, Math.min(TICK_MS, begin + sent * period - performance.now()))));
  }
  const sendingMs = performance.now() - begin;
  // Completions are awaited for at most 10 s past the window (a stuck balancer).
  await Promise.race([finished, new Promise((r) => setTimeout(r, 10_000))]);
  const elapsedMs = performance.now() - begin;
  const cpu = process.cpuUsage(cpu0);
  eld.disable();
  return {
    mode,
    offered,
    sent,
    ok,
    failed: failed + (offered - completed),
    late,
    sendingMs,
    elapsedMs,
    cpu_us: cpu.user + cpu.system,
    eld_p99_ms: eld.percentile(99) / 1e6,
    histogram: encodeHistogram(h),
  };
});
send({ type: 'ready' });
process.on('uncaughtException', fatal);

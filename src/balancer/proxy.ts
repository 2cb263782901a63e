/**
 * The per-request path (TAO's front-end dispatcher, Karagkasidis's Front-End
 * Dispatcher): one incoming gRPC stream (an H2Stream of rebind's own
 * transport, src/h2) is relayed to a replica over a
 * pooled HTTP/2 connection, headers, DATA frames and trailers piped as they
 * are. The proxy never decodes gRPC framing or messages, so it needs no
 * .proto files and handles all four call kinds alike.
 */
import * as http2 from 'node:http2';
import { status as Status } from '@grpc/grpc-js';
import type { Logger } from '../common/logger';
import { encodeGrpcMessage, encodeGrpcTimeoutCapped, HOP_BY_HOP, parseGrpcTimeoutMs, respondTrailersOnly, statusForRstCode } from '../common/grpc-http2';
import type { H2Stream } from '../h2';
import { MAX_TIMER_DELAY_MS, setLongTimeout, type LongTimer } from '../common/long-timer';
import { builtinProxy, type ProxyConfig } from './config';
import { PROXIED_HEADER, REBIND_TRAILERS } from '../common/wire';

const { NGHTTP2_CANCEL, HTTP2_HEADER_STATUS, NGHTTP2_FLAG_END_STREAM } = http2.constants;

/** HTTP/2's initial connection window (RFC 9113 §6.9.2); the connection window never goes below it. */
const HTTP2_DEFAULT_WINDOW_BYTES = 65_535;

/** A proxied stream is over: its connection no longer counts it (a shared listener: no closure per call). */
function untrackUpstream(this: http2.ClientHttp2Stream & { [kConnection]?: UpstreamConnection }): void {
  this[kConnection]?.streams.delete(this);
}

/** One upstream HTTP/2 connection and the proxied calls it carries. */
export class UpstreamConnection {
  /** Proxied calls open on this connection. */
  readonly streams = new Set<http2.ClientHttp2Stream>();
  /**
   * Why the pool gave this connection up (keepalive or connect timeout, the
   * member was removed, a connection error), as a phrase following
   * "replica <address>"; null while it is healthy.
   */
  lostReason: string | null = null;
  /** The replica's HTTP/2 SETTINGS arrived: its HTTP/2 layer answers. */
  ready = false;
  pingOutstanding = false;
  /** The replica sent GOAWAY: calls in flight finish here, new ones go elsewhere. */
  goingAway = false;
  timers: NodeJS.Timeout[] = [];

  constructor(
    readonly address: string,
    readonly session: http2.ClientHttp2Session,
  ) {}

  /**
   * Why the calls on this connection cannot complete, or null when the
   * connection is fine: a connection lost (reset, closed, timed out, given
   * up) fails its calls with UNAVAILABLE, whatever code their streams were
   * reset with on the way down.
   */
  loss(): string | null {
    if (this.lostReason !== null) return this.lostReason;
    if (this.session.destroyed || this.session.closed) return 'lost its connection';
    return null;
  }
}

/**
 * Upstream HTTP/2 connections to replicas: up to `maxConnectionsPerReplica`
 * per replica address, each carrying up to `maxStreamsPerConnection` proxied
 * calls. Each call's response window is `streamWindowBytes` and each
 * connection's window is at least streams x that, so calls whose clients
 * stop reading park at most one window each and cannot starve the others.
 * While a connection carries calls it is pinged every `keepaliveTimeMs`; an
 * unanswered ping (a hung replica) or a handshake not done within
 * `connectTimeoutMs` (a stopped process still accepts TCP) gives it up and
 * fails its calls with UNAVAILABLE.
 */
export class UpstreamPool {
  private readonly byAddress = new Map<string, UpstreamConnection[]>();
  private readonly options: ProxyConfig;

  /** `ca`: replicas serve TLS with certificates chaining to it; null: plaintext. */
  constructor(
    private readonly log: Logger,
    private readonly ca: Buffer | null = null,
    options: Partial<ProxyConfig> = {},
  ) {
    this.options = { ...builtinProxy(), ...options };
  }

  get scheme(): 'http' | 'https' {
    return this.ca === null ? 'http' : 'https';
  }

  /** Proxied calls the pool may carry to one replica at once. */
  get limitPerReplica(): number {
    return this.options.maxConnectionsPerReplica * this.options.maxStreamsPerConnection;
  }

  /** How the limit is made up, for refusal messages. */
  get limitText(): string {
    return `${this.limitPerReplica}: proxy.maxConnectionsPerReplica ${this.options.maxConnectionsPerReplica} x proxy.maxStreamsPerConnection ${this.options.maxStreamsPerConnection}`;
  }

  /** Proxied calls in flight to `address`. */
  inFlight(address: string): number {
    let n = 0;
    for (const connection of this.byAddress.get(address) ?? []) n += connection.streams.size;
    return n;
  }

  /**
   * Opens one proxied call to `address` on a connection with room, opening
   * a connection if none has room; null when the replica already has
   * `limitPerReplica` calls in flight. Throws when a request cannot be
   * started at all.
   */
  open(address: string, headers: http2.OutgoingHttpHeaders): { stream: http2.ClientHttp2Stream; connection: UpstreamConnection } | null {
    const connections = this.byAddress.get(address) ?? [];
    let connection = connections.find((c) => !c.goingAway && c.loss() === null && c.streams.size < this.options.maxStreamsPerConnection);
    if (connection === undefined) {
      if (connections.filter((c) => !c.goingAway).length >= this.options.maxConnectionsPerReplica) return null;
      connection = this.connect(address);
    }
    const stream = connection.session.request(headers, { endStream: false }) as http2.ClientHttp2Stream & { [kConnection]?: UpstreamConnection };
    connection.streams.add(stream);
    stream[kConnection] = connection;
    stream.on('close', untrackUpstream);
    return { stream, connection };
  }

  private connect(address: string): UpstreamConnection {
    const { streamWindowBytes, maxStreamsPerConnection, connectTimeoutMs, keepaliveTimeMs } = this.options;
    const settings: http2.Settings = { enablePush: false, initialWindowSize: streamWindowBytes };
    const session =
      this.ca === null
        ? http2.connect(`http://${address}`, { settings })
        : http2.connect(`https://${address}`, { settings, ca: this.ca, ALPNProtocols: ['h2'] });
    const connection = new UpstreamConnection(address, session);
    const list = this.byAddress.get(address);
    if (list === undefined) this.byAddress.set(address, [connection]);
    else list.push(connection);
    session.on('connect', () => {
      // Node emits 'connect' on a session destroyed while its socket was connecting (its member
      // was removed meanwhile); setLocalWindowSize would throw and take the balancer down.
      if (session.destroyed) return;
      // The connection window is the sum of its calls' windows: calls that stop
      // reading use up their own window, never the one the other calls need.
      session.setLocalWindowSize(Math.max(HTTP2_DEFAULT_WINDOW_BYTES, streamWindowBytes * maxStreamsPerConnection));
    });
    session.once('remoteSettings', () => {
      connection.ready = true;
    });
    const connectTimer = setTimeout(() => {
      if (!connection.ready) this.lose(connection, `did not complete the HTTP/2 handshake within ${connectTimeoutMs} ms (proxy.connectTimeoutMs)`);
    }, connectTimeoutMs);
    const keepalive = setInterval(() => this.ping(connection), keepaliveTimeMs);
    connectTimer.unref();
    keepalive.unref();
    connection.timers.push(connectTimer, keepalive);
    session.on('error', (err) => {
      this.log.debug({ address, err: err.message }, 'upstream connection error');
      connection.lostReason ??= `connection failed: ${err.message}`;
      this.forget(connection);
      this.stopTimers(connection);
    });
    // A GOAWAY lets the calls in flight finish (still under keepalive); new ones go to another connection.
    session.on('goaway', () => {
      connection.goingAway = true;
    });
    session.on('close', () => {
      connection.lostReason ??= 'closed the connection';
      this.forget(connection);
      this.stopTimers(connection);
    });
    session.unref();
    return connection;
  }

  /** Keepalive: one ping at a time, only while the connection carries calls. */
  private ping(connection: UpstreamConnection): void {
    if (connection.streams.size === 0 || connection.pingOutstanding || !connection.ready || connection.lostReason !== null || connection.session.destroyed) return;
    const timeoutMs = this.options.keepaliveTimeoutMs;
    connection.pingOutstanding = true;
    const timer = setTimeout(() => this.lose(connection, `did not answer a keepalive ping within ${timeoutMs} ms`), timeoutMs);
    timer.unref();
    let sent = false;
    try {
      sent = connection.session.ping((err) => {
        clearTimeout(timer);
        connection.pingOutstanding = false;
        if (err !== null) this.log.debug({ address: connection.address, err: err.message }, 'upstream keepalive ping failed');
      });
    } catch (err) {
      this.log.debug({ address: connection.address, err: (err as Error).message }, 'upstream keepalive ping not sent');
    }
    if (!sent) {
      clearTimeout(timer);
      connection.pingOutstanding = false;
    }
  }

  /** Gives a connection up: its calls fail with UNAVAILABLE and `reason`. */
  private lose(connection: UpstreamConnection, reason: string): void {
    if (connection.lostReason === null) connection.lostReason = reason;
    this.log.debug({ address: connection.address, reason, calls: connection.streams.size }, 'upstream connection given up');
    this.forget(connection);
    this.stopTimers(connection);
    if (!connection.session.destroyed) connection.session.destroy();
  }

  private stopTimers(connection: UpstreamConnection): void {
    for (const timer of connection.timers) clearTimeout(timer);
    connection.timers = [];
  }

  /** Takes a connection out of the pool: no new calls go to it. */
  private forget(connection: UpstreamConnection): void {
    const list = this.byAddress.get(connection.address);
    if (list === undefined) return;
    const index = list.indexOf(connection);
    if (index >= 0) list.splice(index, 1);
    if (list.length === 0) this.byAddress.delete(connection.address);
  }

  /** Its member left: the calls in flight to `address` end with UNAVAILABLE, now. */
  release(address: string, reason = 'was removed from its group'): void {
    for (const connection of [...(this.byAddress.get(address) ?? [])]) this.lose(connection, reason);
  }

  close(): void {
    for (const list of [...this.byAddress.values()]) for (const connection of [...list]) this.lose(connection, 'is unreachable: the balancer is shutting down');
  }
}

export interface ProxyOutcome {
  /** Called once when the proxied call is over, whatever the outcome. */
  done(): void;
}

/**
 * The relay's state for one call: the client stream's `context` and the
 * upstream stream's {@link kCall}. The callbacks below are shared
 * module-level functions (called with the stream as `this`), so a relayed
 * call allocates one object instead of a dozen closures, and no pipe
 * machinery.
 */
const kCall = Symbol('rebind.relayedCall');
/** The upstream connection a proxied stream is counted on (see UpstreamPool.open). */
const kConnection = Symbol('rebind.upstreamConnection');

type UpstreamSide = http2.ClientHttp2Stream & { [kCall]: RelayedCall; [kConnection]?: UpstreamConnection };

class RelayedCall {
  finished = false;
  /** The replica's response headers were relayed. */
  responded = false;
  trailers: http2.IncomingHttpHeaders | null = null;
  /** The started response was ended with a status of ours (deadline, upstream loss) instead of the replica's trailers. */
  failed = false;
  timer: NodeJS.Timeout | null = null;
  longTimer: LongTimer | null = null;

  constructor(
    readonly stream: H2Stream,
    readonly upstream: UpstreamSide,
    readonly connection: UpstreamConnection,
    readonly address: string,
    readonly outcome: ProxyOutcome,
    readonly timeoutMs: number | null,
  ) {}

  finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.longTimer?.clear();
    this.outcome.done();
  }

  fail(code: Status, message: string): void {
    const { stream, upstream } = this;
    if (!upstream.destroyed) upstream.close(NGHTTP2_CANCEL);
    if (!stream.closed) {
      if (!stream.headersSent) {
        respondTrailersOnly(stream, code, message);
      } else if (!this.failed && !stream.writableEnded) {
        // End the started response with a status the client can act on
        // (its replay and retry act on UNAVAILABLE), not with a reset.
        // The trailers go out after the response data already queued.
        this.failed = true;
        stream.end({ 'grpc-status': String(code), 'grpc-message': encodeGrpcMessage(message) });
      }
    }
    this.finish();
  }

  /** The upstream stream is over (error or close): end the client's call accordingly. */
  upstreamGone(err: Error | null): void {
    if (this.finished) return;
    const { upstream, stream, address } = this;
    const rst = upstream.rstCode ?? 0;
    const loss = this.connection.loss();
    if (!this.responded) {
      if (loss !== null) this.fail(Status.UNAVAILABLE, `rebind: replica ${address} ${loss} before answering`);
      else if (rst !== 0) this.fail(statusForRstCode(rst), `rebind: replica ${address} reset the call before answering (HTTP/2 code ${rst})`);
      else this.fail(Status.UNAVAILABLE, `rebind: replica ${address} failed before answering${err !== null ? `: ${err.message}` : ''}`);
    } else if (this.trailers === null) {
      if (loss !== null) this.fail(Status.UNAVAILABLE, `rebind: replica ${address} ${loss} mid-response`);
      else if (rst !== 0) this.fail(statusForRstCode(rst), `rebind: replica ${address} reset the call (HTTP/2 code ${rst})`);
      else if (err !== null) this.fail(Status.UNAVAILABLE, `rebind: replica ${address} failed mid-response: ${err.message}`);
      else this.fail(Status.INTERNAL, `rebind: replica ${address} ended the response without trailers`);
    } else if (stream.closed) {
      this.finish();
    }
    // Otherwise a normal end: the client stream's close (onClientClose) finishes the call once our trailers are sent.
  }
}

function onDeadline(call: RelayedCall): void {
  call.fail(Status.DEADLINE_EXCEEDED, `rebind: deadline of ${call.timeoutMs} ms exceeded while proxying to ${call.address}`);
}

// Request direction: client -> replica, with backpressure.
// A chunk is a view of the socket read it arrived in (or a copy, if it was queued): node allocates
// a new buffer for every socket read and the transport never reuses one, so the upstream stream
// may hold it until written without a copy.
function onClientData(this: H2Stream, chunk: Buffer, endStream: boolean): void {
  const upstream = (this.context as RelayedCall).upstream;
  if (upstream.destroyed || upstream.writableEnded) return;
  if (endStream) {
    // END_STREAM with the last DATA frame (every unary call) goes out the same way: end(chunk)
    // puts it on the last DATA frame towards the replica (end() also uncorks).
    if (chunk.length > 0) upstream.end(chunk);
    else upstream.end();
    return;
  }
  // Held until the end or the next turn of the event loop, whichever comes first: a request
  // whose END_STREAM arrives in an empty DATA frame of a later read would otherwise go out as
  // DATA, then an empty DATA frame with END_STREAM in another write, and the replica waits for
  // that second frame before it runs the handler. A stream that goes on is uncorked by the
  // immediate, in the same turn of the loop.
  if (upstream.writableCorked === 0) {
    upstream.cork();
    setImmediate(uncork, upstream);
  }
  if (!upstream.write(chunk)) this.pause();
}
function uncork(upstream: UpstreamSide): void {
  if (!upstream.destroyed && upstream.writableCorked > 0) upstream.uncork();
}
function onUpstreamDrain(this: UpstreamSide): void {
  this[kCall].stream.resume();
}
function onClientClose(this: H2Stream): void {
  const call = this.context as RelayedCall;
  if (call.finished) return;
  // The client went away (cancel, deadline on its side, connection loss), or our trailers went out after the replica's.
  const upstream = call.upstream;
  // A call complete both ways closes upstream by itself. Our client stream can close before
  // node:http2 has closed its side (the replica's END_STREAM read, the stream still
  // half-closed in nghttp2): an RST_STREAM then reaches the replica on a stream it has closed,
  // and node's server counts those as invalid frames: past 1,000 (maxSessionInvalidFrames) it
  // ends the connection with GOAWAY INTERNAL_ERROR, failing every call on it.
  const complete = call.trailers !== null && upstream.readableEnded && upstream.writableEnded;
  if (!upstream.destroyed && !complete) upstream.close(NGHTTP2_CANCEL);
  call.finish();
}

// Response direction: replica -> client.
function onUpstreamResponse(this: UpstreamSide, responseHeaders: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader, flags: number): void {
  const call = this[kCall];
  const stream = call.stream;
  // Closed, or already answered by us (a deadline or a failure raced the replica's headers).
  if (stream.closed || stream.headersSent) return;
  call.responded = true;
  const out = relayedHeaders(responseHeaders);
  out[HTTP2_HEADER_STATUS] = responseHeaders[HTTP2_HEADER_STATUS] ?? 200;
  if ((flags & NGHTTP2_FLAG_END_STREAM) !== 0) {
    // Trailers-Only.
    stream.respond(out, END_STREAM);
    call.finish();
  } else {
    stream.respond(out);
  }
}
function onUpstreamData(this: UpstreamSide, chunk: Buffer): void {
  const stream = this[kCall].stream;
  if (stream.closed || !stream.headersSent || stream.writableEnded) return;
  if (!stream.write(chunk)) this.pause();
}
function onClientDrain(this: H2Stream): void {
  (this.context as RelayedCall).upstream.resume();
}
function onUpstreamTrailers(this: UpstreamSide, trailers: http2.IncomingHttpHeaders): void {
  this[kCall].trailers = trailers;
}
function onUpstreamEnd(this: UpstreamSide): void {
  const call = this[kCall];
  const stream = call.stream;
  // Only a response that ended with the replica's trailers is complete; a
  // stream ended locally because its connection went is judged on 'close'.
  if (call.trailers !== null && call.responded && stream.headersSent && !stream.writableEnded && !stream.closed) stream.end(relayedHeaders(call.trailers));
}
function onUpstreamError(this: UpstreamSide, err: Error): void {
  this[kCall].upstreamGone(err);
}
function onUpstreamClose(this: UpstreamSide): void {
  this[kCall].upstreamGone(null);
}

const END_STREAM = Object.freeze({ endStream: true });

/**
 * The request's headers as sent to the replica: its end-to-end headers
 * (a repeated field as an array: node:http2 sends each value), the
 * pseudo-headers for `address`, and the proxied marker (replacing any the
 * client sent), built in one pass.
 */
function upstreamHeaders(stream: H2Stream, scheme: string, address: string, proxiedMarker: string): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = { ':method': 'POST', ':path': stream.path, ':scheme': scheme, ':authority': address };
  const raw = stream.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const key = raw[i]!;
    if (key.charCodeAt(0) === 58 /* ':' */ || HOP_BY_HOP.has(key) || key === PROXIED_HEADER) continue;
    const value = raw[i + 1]!;
    const prev = out[key];
    if (prev === undefined) out[key] = value;
    else if (Array.isArray(prev)) prev.push(value);
    else out[key] = [String(prev), value];
  }
  out[PROXIED_HEADER] = proxiedMarker;
  return out;
}

/**
 * A replica's response headers or trailers as relayed to the client: its
 * end-to-end headers without rebind's own trailers (a replica never forwards
 * a proxied call: rebind's trailers on a relayed response can only be
 * forged, and must not reach the client as the balancer's).
 */
function relayedHeaders(headers: http2.IncomingHttpHeaders): Record<string, string | number | string[] | undefined> {
  const out: Record<string, string | number | string[] | undefined> = {};
  for (const key in headers) {
    if (key.charCodeAt(0) === 58 /* ':' */ || HOP_BY_HOP.has(key) || REBIND_TRAILERS.has(key)) continue;
    out[key] = headers[key];
  }
  return out;
}

/**
 * Relays `stream` to `address`. The caller has already chosen the member
 * and checked that it is under `pool.limitPerReplica`; `outcome.done` is
 * called exactly once at the end.
 *
 * How the call ends when the replica does not complete it: a connection
 * lost (reset, closed, keepalive or connect timeout, member removed) is
 * UNAVAILABLE, before or after response headers (then as trailers, not a
 * reset); a replica's own RST_STREAM keeps the gRPC spec's mapping.
 */
export function proxyStream(
  pool: UpstreamPool,
  stream: H2Stream,
  address: string,
  outcome: ProxyOutcome,
  /** The member's proxy secret: the rebind-proxied value that tells it the balancer proxied this call. */
  proxiedMarker: string,
): void {
  const outHeaders = upstreamHeaders(stream, pool.scheme, address, proxiedMarker);
  const timeoutMs = parseGrpcTimeoutMs(stream.header('grpc-timeout'));
  // A replica whose timer overflows would fail a longer deadline at once; this proxy still enforces it in full.
  if (timeoutMs !== null && timeoutMs > MAX_TIMER_DELAY_MS) outHeaders['grpc-timeout'] = encodeGrpcTimeoutCapped(timeoutMs);

  let opened: ReturnType<UpstreamPool['open']>;
  try {
    opened = pool.open(address, outHeaders);
  } catch (err) {
    respondTrailersOnly(stream, Status.UNAVAILABLE, `rebind: cannot reach replica ${address}: ${(err as Error).message}`);
    outcome.done();
    return;
  }
  if (opened === null) {
    // The caller checks the limit first; this is a safety net, not the rule.
    respondTrailersOnly(stream, Status.RESOURCE_EXHAUSTED, `rebind: replica ${address} has ${pool.inFlight(address)} proxied calls in flight (limit ${pool.limitText})`);
    outcome.done();
    return;
  }
  const upstream = opened.stream as UpstreamSide;
  const call = new RelayedCall(stream, upstream, opened.connection, address, outcome, timeoutMs);
  stream.context = call;
  upstream[kCall] = call;

  if (timeoutMs !== null) {
    // The client's deadline can be anything up to 99999999 hours: beyond setTimeout's range.
    if (timeoutMs <= MAX_TIMER_DELAY_MS) call.timer = setTimeout(onDeadline, timeoutMs, call);
    else call.longTimer = setLongTimeout(() => onDeadline(call), timeoutMs);
  }

  stream.onClose = onClientClose;
  stream.onDrain = onClientDrain;
  upstream.on('drain', onUpstreamDrain);
  upstream.on('response', onUpstreamResponse);
  upstream.on('data', onUpstreamData);
  upstream.on('trailers', onUpstreamTrailers);
  upstream.on('end', onUpstreamEnd);
  upstream.on('error', onUpstreamError);
  upstream.on('close', onUpstreamClose);
  // Last: read() delivers what arrived already (a unary request's message) at once.
  stream.read(onClientData);
}

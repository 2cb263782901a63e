/**
 * The per-request path (TAO's front-end dispatcher, Karagkasidis's Front-End
 * Dispatcher): one incoming gRPC stream (an H2Stream of rebind's own
 * transport, src/h2) is relayed to a replica over a
 * pooled HTTP/2 connection, headers, DATA frames and trailers piped as they
 * are. The proxy never decodes gRPC framing or messages, so it needs no
 * .proto files and handles all four call kinds alike.
 */
import { status as Status } from '@grpc/grpc-js';
import type { Logger } from '../common/logger';
import { encodeGrpcMessage, encodeGrpcTimeoutCapped, HOP_BY_HOP, parseGrpcTimeoutMs, respondTrailersOnly, statusForRstCode } from '../common/grpc-http2';
import { connectH2, ErrorCode, H2ClientCounters, H2Headers, HpackEncoder, type EncodedHeaders, type H2ClientConnection, type H2ClientStream, type H2Stream } from '../h2';
import { MAX_WINDOW_BYTES } from '../h2/frames';
import { MAX_TIMER_DELAY_MS, setLongTimeout, type LongTimer } from '../common/long-timer';
import { builtinProxy, type ProxyConfig } from './config';
import { PROXIED_HEADER, REBIND_TRAILERS } from '../common/wire';

/** HTTP/2's initial connection window (RFC 9113 §6.9.2); the connection window never goes below it. */
const HTTP2_DEFAULT_WINDOW_BYTES = 65_535;

/** One upstream HTTP/2 connection (rebind's own client transport, src/h2/client.ts) and the proxied calls it carries. */
export class UpstreamConnection {
  /**
   * Why the pool gave this connection up (keepalive or connect timeout, the
   * member was removed, a connection error), as a phrase following
   * "replica <address>"; null while it is healthy.
   */
  lostReason: string | null = null;
  pingOutstanding = false;
  /** The replica sent GOAWAY: calls in flight finish here, new ones go elsewhere. */
  goingAway = false;
  timers: NodeJS.Timeout[] = [];

  constructor(
    readonly address: string,
    readonly h2: H2ClientConnection,
  ) {}

  /** The replica's HTTP/2 SETTINGS arrived: its HTTP/2 layer answers. */
  get ready(): boolean {
    return this.h2.ready;
  }

  /** Proxied calls open on this connection. */
  get calls(): number {
    return this.h2.openStreams;
  }

  /**
   * Why the calls on this connection cannot complete, or null when the
   * connection is fine: a connection lost (reset, closed, timed out, given
   * up) fails its calls with UNAVAILABLE, whatever code their streams were
   * reset with on the way down.
   */
  loss(): string | null {
    if (this.lostReason !== null) return this.lostReason;
    if (this.h2.destroyed) return this.h2.error !== null ? `connection failed: ${this.h2.error.message}` : 'lost its connection';
    return null;
  }
}

/**
 * Upstream HTTP/2 connections to replicas: up to `maxConnectionsPerReplica`
 * per replica address, each carrying up to `maxStreamsPerConnection` proxied
 * calls (fewer if the replica's MAX_CONCURRENT_STREAMS says so). Each call's
 * response window is `streamWindowBytes` and each connection's window is at
 * least streams x that, so calls whose clients stop reading park at most one
 * window each and cannot starve the others. While a connection carries
 * calls it is pinged every `keepaliveTimeMs`; an unanswered ping (a hung
 * replica) or a handshake not done within `connectTimeoutMs` (a stopped
 * process still accepts TCP) gives it up and fails its calls with
 * UNAVAILABLE. The connections run on rebind's own HTTP/2 client
 * (src/h2/client.ts): a call is a plain object with callbacks, its headers
 * one pre-encoded block, and its output one socket write per turn of the
 * event loop.
 */
export class UpstreamPool {
  /** The upstream transport's counters (all connections of the pool). */
  readonly counters = new H2ClientCounters();
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
    for (const connection of this.byAddress.get(address) ?? []) n += connection.calls;
    return n;
  }

  /** Upstream connections open (all replicas). */
  get connections(): number {
    let n = 0;
    for (const list of this.byAddress.values()) n += list.length;
    return n;
  }

  /**
   * Opens one proxied call to `address` with an HPACK header block
   * (HpackEncoder: valid on any connection) on a connection with room,
   * opening a connection if none has room; null when the replica already has
   * `limitPerReplica` calls in flight (or its own stream limit is reached on
   * every connection). Throws when a request cannot be started at all.
   */
  open(address: string, headerBlock: Buffer): { stream: H2ClientStream; connection: UpstreamConnection } | null {
    const connections = this.byAddress.get(address) ?? [];
    const max = this.options.maxStreamsPerConnection;
    let connection: UpstreamConnection | undefined;
    let active = 0;
    for (const c of connections) {
      if (c.goingAway) continue;
      active++;
      if (connection === undefined && c.lostReason === null && c.h2.canOpen && c.calls < max) connection = c;
    }
    if (connection === undefined) {
      if (active >= this.options.maxConnectionsPerReplica) return null;
      connection = this.connect(address);
    }
    const stream = connection.h2.request(headerBlock);
    if (stream === null) return null;
    return { stream, connection };
  }

  private connect(address: string): UpstreamConnection {
    const { streamWindowBytes, maxStreamsPerConnection, connectTimeoutMs, keepaliveTimeMs } = this.options;
    const h2 = connectH2(
      address,
      {
        initialWindowSizeBytes: streamWindowBytes,
        // The connection window is the sum of its calls' windows: calls that stop
        // reading use up their own window, never the one the other calls need.
        connectionWindowSizeBytes: Math.min(MAX_WINDOW_BYTES, Math.max(HTTP2_DEFAULT_WINDOW_BYTES, streamWindowBytes * maxStreamsPerConnection)),
        maxConcurrentStreams: maxStreamsPerConnection,
        ...(this.ca !== null ? { tls: { ca: this.ca } } : {}),
      },
      this.counters,
    );
    const connection = new UpstreamConnection(address, h2);
    const list = this.byAddress.get(address);
    if (list === undefined) this.byAddress.set(address, [connection]);
    else list.push(connection);
    const connectTimer = setTimeout(() => {
      if (!connection.ready) this.lose(connection, `did not complete the HTTP/2 handshake within ${connectTimeoutMs} ms (proxy.connectTimeoutMs)`);
    }, connectTimeoutMs);
    const keepalive = setInterval(() => this.ping(connection), keepaliveTimeMs);
    connectTimer.unref();
    keepalive.unref();
    connection.timers.push(connectTimer, keepalive);
    // A GOAWAY lets the calls in flight finish (still under keepalive); new ones go to another
    // connection. Calls above its last-stream-id were closed by the transport as refused.
    h2.onGoaway = () => {
      connection.goingAway = true;
    };
    h2.onClose = (err) => {
      if (err !== null) this.log.debug({ address, err: err.message }, 'upstream connection error');
      connection.lostReason ??= err !== null ? `connection failed: ${err.message}` : 'closed the connection';
      this.forget(connection);
      this.stopTimers(connection);
    };
    (h2.socket as { unref?: () => void }).unref?.();
    return connection;
  }

  /** Keepalive: one ping at a time, only while the connection carries calls. */
  private ping(connection: UpstreamConnection): void {
    if (connection.calls === 0 || connection.pingOutstanding || !connection.ready || connection.lostReason !== null || connection.h2.destroyed) return;
    const timeoutMs = this.options.keepaliveTimeoutMs;
    connection.pingOutstanding = true;
    const timer = setTimeout(() => this.lose(connection, `did not answer a keepalive ping within ${timeoutMs} ms`), timeoutMs);
    timer.unref();
    const sent = connection.h2.ping((ok) => {
      clearTimeout(timer);
      connection.pingOutstanding = false;
      if (!ok) this.log.debug({ address: connection.address }, 'upstream keepalive ping failed: the connection went');
    });
    if (!sent) {
      clearTimeout(timer);
      connection.pingOutstanding = false;
    }
  }

  /** Gives a connection up: its calls fail with UNAVAILABLE and `reason`. */
  private lose(connection: UpstreamConnection, reason: string): void {
    if (connection.lostReason === null) connection.lostReason = reason;
    this.log.debug({ address: connection.address, reason, calls: connection.calls }, 'upstream connection given up');
    this.forget(connection);
    this.stopTimers(connection);
    if (!connection.h2.destroyed) connection.h2.destroy();
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
 * The relay's state for one call: the `context` of both the client's stream
 * and the upstream stream. The callbacks below are shared module-level
 * functions (called with the stream as `this`), so a relayed call allocates
 * one object instead of a dozen closures, and no pipe machinery.
 */
class RelayedCall {
  finished = false;
  /** The replica's response headers were relayed. */
  responded = false;
  /** The replica's trailers (flat list), once they arrived. */
  trailers: string[] | null = null;
  /** The started response was ended with a status of ours (deadline, upstream loss) instead of the replica's trailers. */
  failed = false;
  timer: NodeJS.Timeout | null = null;
  longTimer: LongTimer | null = null;

  constructor(
    readonly stream: H2Stream,
    readonly upstream: H2ClientStream,
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
    // The transport closes a reset stream synchronously: its onClose must not judge the call again
    // (it would end it with CANCELLED, the code we reset with, instead of `code`).
    upstream.onClose = null;
    if (!upstream.closed) upstream.reset(ErrorCode.CANCEL);
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

  /** The upstream stream closed with `rst` (0: cleanly): end the client's call accordingly. */
  upstreamGone(rst: number): void {
    if (this.finished) return;
    const { upstream, stream, address } = this;
    const loss = this.connection.loss();
    if (!this.responded) {
      if (loss !== null) this.fail(Status.UNAVAILABLE, `rebind: replica ${address} ${loss} before answering`);
      else if (upstream.localError !== null) this.fail(Status.INTERNAL, `rebind: replica ${address} sent ${upstream.localError}`);
      else if (upstream.refused) this.fail(Status.UNAVAILABLE, `rebind: replica ${address} went away (GOAWAY) before taking the call`);
      else if (rst !== 0) this.fail(statusForRstCode(rst), `rebind: replica ${address} reset the call before answering (HTTP/2 code ${rst})`);
      else this.fail(Status.UNAVAILABLE, `rebind: replica ${address} failed before answering`);
    } else if (this.trailers === null) {
      if (loss !== null) this.fail(Status.UNAVAILABLE, `rebind: replica ${address} ${loss} mid-response`);
      else if (upstream.localError !== null) this.fail(Status.INTERNAL, `rebind: replica ${address} sent ${upstream.localError}`);
      else if (rst !== 0) this.fail(statusForRstCode(rst), `rebind: replica ${address} reset the call (HTTP/2 code ${rst})`);
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
  if (upstream.closed || upstream.writableEnded) return;
  if (endStream) {
    // END_STREAM goes on the DATA frame carrying the last chunk (every unary call: HEADERS and
    // one DATA frame with END_STREAM, in one socket write). If it comes in an empty DATA frame
    // of a later read in the same turn of the event loop, the transport sets END_STREAM on the
    // DATA frame still queued: the replica runs a unary handler only once it has END_STREAM.
    upstream.end(chunk.length > 0 ? chunk : undefined);
    return;
  }
  if (!upstream.write(chunk)) this.pause();
}
function onUpstreamDrain(this: H2ClientStream): void {
  (this.context as RelayedCall).stream.resume();
}
function onClientClose(this: H2Stream): void {
  const call = this.context as RelayedCall;
  if (call.finished) return;
  // The client went away (cancel, deadline on its side, connection loss), or our trailers went out after the replica's.
  const upstream = call.upstream;
  // A response the replica has ended closes upstream by itself (the transport closes the stream
  // once the end is delivered, with RST_STREAM NO_ERROR if our request was still open); our
  // client stream can close first, inside the delivery of the replica's trailers. No
  // RST_STREAM then: it would reach the replica on a stream it has closed, and node's server
  // counts those as invalid frames: past 1,000 (maxSessionInvalidFrames) it ends the
  // connection with GOAWAY INTERNAL_ERROR, failing every call on it.
  call.finish();
  if (upstream.readableEnded) upstream.resume();
  else if (!upstream.closed) upstream.reset(ErrorCode.CANCEL);
}

// Response direction: replica -> client.
function onUpstreamResponse(this: H2ClientStream, rawHeaders: string[], endStream: boolean): void {
  const call = this.context as RelayedCall;
  const stream = call.stream;
  // Closed, or already answered by us (a deadline or a failure raced the replica's headers).
  if (stream.closed || stream.headersSent) return;
  call.responded = true;
  const out = relayedHeaders(rawHeaders);
  if (endStream) {
    // Trailers-Only. Finished first: the client stream may close inside respond().
    call.finish();
    stream.respond(out, END_STREAM);
  } else {
    stream.respond(out);
  }
}
function onUpstreamData(this: H2ClientStream, chunk: Buffer, endStream: boolean): void {
  const call = this.context as RelayedCall;
  const stream = call.stream;
  if (stream.closed || !stream.headersSent || stream.writableEnded) return;
  if (chunk.length > 0 && !stream.write(chunk)) this.pause();
  // Only a response that ended with the replica's trailers is complete; one ended without them
  // is judged when the upstream stream closes.
  if (endStream && call.trailers !== null && call.responded && !stream.writableEnded && !stream.closed) stream.end(relayedHeaders(call.trailers));
}
function onClientDrain(this: H2Stream): void {
  (this.context as RelayedCall).upstream.resume();
}
function onUpstreamTrailers(this: H2ClientStream, trailers: string[]): void {
  (this.context as RelayedCall).trailers = trailers;
}
function onUpstreamClose(this: H2ClientStream, rstCode: number): void {
  (this.context as RelayedCall).upstreamGone(rstCode);
}

const END_STREAM = Object.freeze({ endStream: true });

/**
 * The request's header block as sent to the replica: the pseudo-headers for
 * `address`, the client's end-to-end headers in order (a repeated field
 * repeated), the proxied marker (replacing any the client sent), and a
 * grpc-timeout a replica's 32-bit timer can hold; one flat list, encoded once.
 */
function upstreamHeaderBlock(stream: H2Stream, scheme: string, address: string, proxiedMarker: string, cappedTimeout: string | null): Buffer {
  const out: string[] = [':method', 'POST', ':scheme', scheme, ':path', stream.path, ':authority', address];
  const raw = stream.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const key = raw[i]!;
    if (key.charCodeAt(0) === 58 /* ':' */ || HOP_BY_HOP.has(key) || key === PROXIED_HEADER) continue;
    out.push(key, cappedTimeout !== null && key === 'grpc-timeout' ? cappedTimeout : raw[i + 1]!);
  }
  out.push(PROXIED_HEADER, proxiedMarker);
  return HpackEncoder.encodeFlat(out);
}

/**
 * A replica's response headers (`:status` kept) or trailers as relayed to
 * the client: its end-to-end fields without rebind's own trailers (a replica
 * never forwards a proxied call: rebind's trailers on a relayed response can
 * only be forged, and must not reach the client as the balancer's).
 */
function relayedHeaders(raw: string[]): EncodedHeaders {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const key = raw[i]!;
    if (key.charCodeAt(0) === 58 /* ':' */ ? key !== ':status' : HOP_BY_HOP.has(key) || REBIND_TRAILERS.has(key)) continue;
    out.push(key, raw[i + 1]!);
  }
  return H2Headers.encodeFlat(out);
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
  const timeoutMs = parseGrpcTimeoutMs(stream.header('grpc-timeout'));
  // A replica whose timer overflows would fail a longer deadline at once; this proxy still enforces it in full.
  const cappedTimeout = timeoutMs !== null && timeoutMs > MAX_TIMER_DELAY_MS ? encodeGrpcTimeoutCapped(timeoutMs) : null;

  let opened: ReturnType<UpstreamPool['open']>;
  try {
    opened = pool.open(address, upstreamHeaderBlock(stream, pool.scheme, address, proxiedMarker, cappedTimeout));
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
  const upstream = opened.stream;
  const call = new RelayedCall(stream, upstream, opened.connection, address, outcome, timeoutMs);
  stream.context = call;
  upstream.context = call;

  if (timeoutMs !== null) {
    // The client's deadline can be anything up to 99999999 hours: beyond setTimeout's range.
    if (timeoutMs <= MAX_TIMER_DELAY_MS) call.timer = setTimeout(onDeadline, timeoutMs, call);
    else call.longTimer = setLongTimeout(() => onDeadline(call), timeoutMs);
  }

  stream.onClose = onClientClose;
  stream.onDrain = onClientDrain;
  upstream.onDrain = onUpstreamDrain;
  upstream.onResponse = onUpstreamResponse;
  upstream.onTrailers = onUpstreamTrailers;
  upstream.onClose = onUpstreamClose;
  upstream.read(onUpstreamData);
  // Last: read() delivers what arrived already (a unary request's message) at once.
  stream.read(onClientData);
}

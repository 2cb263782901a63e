/**
 * The control port: one listener, two HTTP/2 servers behind it.
 *
 * A replica's control stream (rebind.v1.Control/Attach, one per replica,
 * a report per interval) is served by rebind's own transport (src/h2): an
 * idle attachment costs a third of a grpc-js session's memory and a report
 * a fraction of grpc-js's per-message work. Everything else on the port
 * (Admin, xDS ADS and LRS) stays on grpc-js, which gets the connection
 * through its connection injector.
 *
 * Which server takes a connection is decided by its first request: a small
 * router reads the client preface and the frames up to the first complete
 * header block (bounded in bytes and time; refusals counted), decodes that
 * block's :path with a fresh HPACK decoder (the first header block of a
 * connection sees an empty dynamic table) and hands the socket, with the
 * bytes already read, to one server. Connections whose first call is
 * /rebind.v1.Control/… go to rebind's transport; such a connection serves
 * Attach only (a replica's control channel carries nothing else): another
 * call on it is refused as not processed (RST_STREAM REFUSED_STREAM after
 * GOAWAY), which grpc-js retries on a new connection.
 *
 * gRPC clients wait for the server's SETTINGS before sending a request, so
 * the router sends an empty SETTINGS frame at accept. The chosen server then
 * sends its own SETTINGS (a second SETTINGS frame is allowed, RFC 9113
 * §6.5). rebind's transport ignores SETTINGS ACKs; nghttp2 (grpc-js) does
 * not accept an ACK it did not ask for, so the router waits for the client's
 * ACK of its SETTINGS and removes it from the bytes it hands to grpc-js.
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import { EventEmitter } from 'node:events';
import * as zlib from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import { status as Status } from '@grpc/grpc-js';
import { EncodedHeaders, ErrorCode, H2Connection, H2Counters, H2Headers, HpackDecoder, resolveH2Options, type H2Options, type H2Stream } from '../h2';
import { CLIENT_PREFACE, Flag, FRAME_HEADER_BYTES, frame, FrameType } from '../h2/frames';
import { formatHostPort, parseListenAddress } from '../common/address';
import { bearer, checkBearer, AUTH_HEADER } from './auth';
import { decodeReplicaMessageInto, newReplicaMessageScratch } from './replica-message-codec';

/** Time from accept (after TLS) to the first complete request header block; past it the connection is closed. */
export const CONTROL_ROUTE_TIMEOUT_MS = 10_000;
/** Bytes a connection may send before its first complete request header block; past it the connection is closed. */
export const MAX_CONTROL_ROUTE_BYTES = 64 * 1024;
/**
 * Connections being routed at once (accepted, first request not read yet);
 * a connection beyond it is closed at accept and counted
 * (`control_route_overflow`). Bounds what connections that never send a
 * request can hold for CONTROL_ROUTE_TIMEOUT_MS; above the 10,000 replicas of
 * a mass (re)attachment, whose first requests follow their connections at once.
 */
export const MAX_ROUTING_CONNECTIONS = 20_000;
/** Largest first header list the router decodes (grpc-js sends a few hundred bytes). */
const MAX_ROUTE_HEADER_LIST_BYTES = 32 * 1024;
/** Streams a Control connection may have open (a replica uses one). */
export const CONTROL_H2_MAX_CONCURRENT_STREAMS = 16;

/** Path prefix of the calls served by rebind's transport. */
const CONTROL_PREFIX = '/rebind.v1.Control/';
/** The one method a Control connection serves. */
export const ATTACH_PATH = '/rebind.v1.Control/Attach';

/** The router's SETTINGS: empty (defaults), just so that the client sends its first request. */
const ROUTER_SETTINGS = frame(FrameType.SETTINGS, 0, 0);

/** TLS material of the control port (as security.controlTls, read). */
export interface ControlTls {
  cert: Buffer;
  key: Buffer;
  ca: Buffer | null;
  requireClientCert: boolean;
}

/** What the control port needs. */
export interface ControlPortOptions {
  /** The grpc-js server for everything but Attach (never bound: connections are injected). */
  grpcServer: grpc.Server;
  /** TLS (ALPN h2), or null for plaintext. */
  tls: ControlTls | null;
  /** Serves one Attach stream (see attachStreamHandler). */
  onAttach: (stream: H2Stream) => void;
  /** Counts a refused connection or call, by reason. */
  refused: (reason: string) => void;
  /** rebind transport options for Control connections. */
  h2?: H2Options;
  /** Overrides of the router bounds (tests). */
  routeTimeoutMs?: number;
  maxRouteBytes?: number;
  maxRoutingConnections?: number;
}

/** Counters of the control port's listener (the H2 side's are in `h2Counters`). */
export interface ControlPortStats {
  /** Connections handed to rebind's transport (first call /rebind.v1.Control/…). */
  routedToH2: number;
  /** Connections handed to grpc-js. */
  routedToGrpc: number;
  /** Control connections open on rebind's transport. */
  h2Connections: number;
  /** Connections still being routed. */
  routing: number;
  counters: H2Counters;
}

/**
 * The control port's listener: routes each connection to rebind's
 * transport (Control) or to grpc-js (the rest) by its first call.
 */
export class ControlPort {
  /** Counters of the Control connections on rebind's transport. */
  readonly h2Counters = new H2Counters();
  /** Control connections on rebind's transport. */
  readonly h2Connections = new Set<H2Connection>();
  routedToH2 = 0;
  routedToGrpc = 0;
  private readonly routing = new Set<net.Socket>();
  private readonly server: net.Server;
  private readonly injector: ReturnType<grpc.Server['createConnectionInjector']>;
  private readonly h2Options: ReturnType<typeof resolveH2Options>;
  private readonly routeTimeoutMs: number;
  private readonly maxRouteBytes: number;
  private readonly maxRoutingConnections: number;
  private closed = false;

  constructor(private readonly options: ControlPortOptions) {
    this.h2Options = resolveH2Options({ maxConcurrentStreams: CONTROL_H2_MAX_CONCURRENT_STREAMS, ...options.h2 });
    this.routeTimeoutMs = options.routeTimeoutMs ?? CONTROL_ROUTE_TIMEOUT_MS;
    this.maxRouteBytes = options.maxRouteBytes ?? MAX_CONTROL_ROUTE_BYTES;
    this.maxRoutingConnections = options.maxRoutingConnections ?? MAX_ROUTING_CONNECTIONS;
    // TLS (if any) is done by our listener: grpc-js sees an already secured socket (its auth context reads it).
    this.injector = options.grpcServer.createConnectionInjector(grpc.ServerCredentials.createInsecure());
    const t = options.tls;
    if (t === null) {
      this.server = net.createServer((socket) => this.accept(socket));
    } else {
      // The semantics of grpc-js's ServerCredentials.createSsl(ca, [cert, key], requireClientCert).
      this.server = tls.createServer(
        {
          cert: t.cert,
          key: t.key,
          ...(t.ca !== null ? { ca: t.ca } : {}),
          requestCert: t.requireClientCert,
          rejectUnauthorized: true,
          ALPNProtocols: ['h2'],
          handshakeTimeout: this.routeTimeoutMs,
        },
        (socket) => {
          if (socket.alpnProtocol !== 'h2') {
            options.refused('control_not_h2');
            socket.destroy();
            return;
          }
          this.accept(socket);
        },
      );
      this.server.on('tlsClientError', () => options.refused('control_tls_handshake'));
    }
  }

  /** Listens on `host:port` (port 0: any); resolves with the bound `host:port`. */
  async listen(address: string): Promise<string> {
    const parsed = parseListenAddress(address);
    if (typeof parsed === 'string') throw new Error(`controlListen: ${parsed}`);
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(parsed.port, parsed.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.server.on('error', () => undefined);
    return formatHostPort(parsed.host, (this.server.address() as net.AddressInfo).port);
  }

  /**
   * Stops accepting; connections being routed are destroyed; Control
   * connections get GOAWAY and are destroyed once it is written (their
   * replicas see the stream end and attach again elsewhere or later, as with
   * grpc-js's forceShutdown); grpc-js's injected sessions are closed.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.server.close();
    for (const s of this.routing) s.destroy();
    this.routing.clear();
    const gone = [...this.h2Connections].map(
      (c) =>
        new Promise<void>((resolve) => {
          const onClose = c.onClose;
          c.onClose = () => (onClose?.(), resolve());
          c.close();
        }),
    );
    this.injector.destroy();
    // GOAWAY is written on the connection's next flush (setImmediate): destroy after it.
    await new Promise((resolve) => setImmediate(resolve));
    for (const c of [...this.h2Connections]) c.destroy();
    await Promise.all(gone);
  }

  stats(): ControlPortStats {
    return { routedToH2: this.routedToH2, routedToGrpc: this.routedToGrpc, h2Connections: this.h2Connections.size, routing: this.routing.size, counters: this.h2Counters };
  }

  private accept(socket: net.Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    if (this.routing.size >= this.maxRoutingConnections) {
      this.options.refused('control_route_overflow');
      socket.destroy();
      return;
    }
    new Router(this, socket, this.routeTimeoutMs, this.maxRouteBytes);
  }

  /** @internal */
  startRouting(socket: net.Socket): void {
    this.routing.add(socket);
  }

  /** @internal */
  refuse(socket: net.Socket, reason: string): void {
    this.routing.delete(socket);
    this.options.refused(reason);
    socket.destroy();
  }

  /** @internal */
  routeGone(socket: net.Socket): void {
    this.routing.delete(socket);
  }

  /** @internal The first call is a Control call: rebind's transport takes the connection. */
  toH2(socket: net.Socket, bytes: Buffer): void {
    this.routing.delete(socket);
    this.routedToH2++;
    socket.setNoDelay(true);
    const c = new H2Connection(socket, (s) => this.onControlStream(s), this.h2Options, this.h2Counters, bytes);
    if (c.destroyed) return;
    this.h2Connections.add(c);
    c.onClose = () => this.h2Connections.delete(c);
  }

  /** @internal Anything else: grpc-js takes the connection with the bytes read so far put back. */
  toGrpc(socket: net.Socket, bytes: Buffer): void {
    this.routing.delete(socket);
    this.routedToGrpc++;
    socket.pause();
    socket.unshift(bytes);
    this.injector.injectConnection(socket);
  }

  private onControlStream(stream: H2Stream): void {
    if (stream.path !== ATTACH_PATH) {
      // A client whose channel carries more than Attach (a replica's does not: attach() gives its
      // control channel its own connection). GOAWAY, then the call refused as not processed:
      // grpc-js retries it transparently on a new connection, whose first call routes it to grpc-js.
      // The Attach stream in progress goes on until it ends.
      this.options.refused('control_call_moved');
      stream.connection.close();
      stream.reset(ErrorCode.REFUSED_STREAM);
      return;
    }
    this.options.onAttach(stream);
  }
}

const enum RouteState {
  /** Reading the client preface and frames up to the first complete header block. */
  Reading,
  /** A non-Control first call: waiting for the client's ACK of the router's SETTINGS. */
  WaitingForAck,
  Done,
}

/** Reads one connection's first request and hands the connection over. */
class Router {
  private buf: Buffer = Buffer.alloc(0);
  /** Parse position (after the preface: a frame boundary). */
  private off = 0;
  private state = RouteState.Reading;
  /** Offset of the client's first SETTINGS ACK, -1: not yet seen. */
  private ackAt = -1;
  /** Fragments of the first header block, while it spans CONTINUATION frames. */
  private block: Buffer[] | null = null;
  private blockStream = 0;
  private timer: NodeJS.Timeout;
  private readonly onData = (chunk: Buffer): void => this.read(chunk);
  private readonly onGone = (): void => this.gone();

  constructor(
    private readonly port: ControlPort,
    private readonly socket: net.Socket,
    timeoutMs: number,
    private readonly maxBytes: number,
  ) {
    port.startRouting(socket);
    socket.on('data', this.onData);
    socket.on('error', this.onGone);
    socket.on('close', this.onGone);
    this.timer = setTimeout(() => this.refuse('control_route_timeout'), timeoutMs);
    this.timer.unref();
    socket.write(ROUTER_SETTINGS);
  }

  private detach(): void {
    this.state = RouteState.Done;
    clearTimeout(this.timer);
    this.socket.off('data', this.onData);
    this.socket.off('error', this.onGone);
    this.socket.off('close', this.onGone);
  }

  private gone(): void {
    if (this.state === RouteState.Done) return;
    this.detach();
    this.port.routeGone(this.socket);
  }

  private refuse(reason: string): void {
    if (this.state === RouteState.Done) return;
    this.detach();
    this.port.refuse(this.socket, reason);
  }

  private read(chunk: Buffer): void {
    if (this.state === RouteState.Done) return;
    if (this.buf.length + chunk.length > this.maxBytes) return this.refuse('control_route_too_large');
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const buf = this.buf;
    if (this.off === 0) {
      const n = Math.min(buf.length, CLIENT_PREFACE.length);
      if (CLIENT_PREFACE.compare(buf, 0, n, 0, n) !== 0) return this.refuse('control_bad_preface');
      if (buf.length < CLIENT_PREFACE.length) return;
      this.off = CLIENT_PREFACE.length;
    }
    while (this.off + FRAME_HEADER_BYTES <= buf.length) {
      const at = this.off;
      const len = buf.readUIntBE(at, 3);
      const type = buf[at + 3]!;
      const flags = buf[at + 4]!;
      const sid = buf.readUInt32BE(at + 5) & 0x7fffffff;
      if (at + FRAME_HEADER_BYTES + len > buf.length) return; // The bytes bound caps the wait.
      this.off = at + FRAME_HEADER_BYTES + len;
      if (type === FrameType.SETTINGS && (flags & Flag.ACK) !== 0 && this.ackAt < 0) {
        this.ackAt = at;
        if (this.state === RouteState.WaitingForAck) return this.handOver(false);
        continue;
      }
      if (this.state !== RouteState.Reading) continue;
      let fragment: Buffer | null = null;
      let endHeaders = false;
      if (type === FrameType.HEADERS && this.block === null) {
        let s = at + FRAME_HEADER_BYTES;
        let e = s + len;
        if ((flags & Flag.PADDED) !== 0) {
          if (len < 1) return this.refuse('control_bad_first_headers');
          e -= buf[s]!;
          s += 1;
        }
        if ((flags & Flag.PRIORITY) !== 0) s += 5;
        if (s > e) return this.refuse('control_bad_first_headers');
        fragment = buf.subarray(s, e);
        endHeaders = (flags & Flag.END_HEADERS) !== 0;
        this.blockStream = sid;
      } else if (type === FrameType.CONTINUATION && this.block !== null) {
        if (sid !== this.blockStream) return this.refuse('control_bad_first_headers');
        fragment = buf.subarray(at + FRAME_HEADER_BYTES, at + FRAME_HEADER_BYTES + len);
        endHeaders = (flags & Flag.END_HEADERS) !== 0;
      } else if (this.block !== null) {
        return this.refuse('control_bad_first_headers');
      } else {
        continue;
      }
      (this.block ??= []).push(fragment);
      if (!endHeaders) continue;
      const list: string[] = [];
      let path: string | undefined;
      try {
        if (new HpackDecoder(undefined, MAX_ROUTE_HEADER_LIST_BYTES).decode(Buffer.concat(this.block), list)) {
          for (let i = 0; i < list.length; i += 2) if (list[i] === ':path') path = list[i + 1];
        }
      } catch {
        return this.refuse('control_bad_first_headers');
      }
      if (path === undefined) return this.refuse('control_bad_first_headers');
      this.block = null;
      if (path.startsWith(CONTROL_PREFIX)) return this.handOver(true);
      if (this.ackAt >= 0) return this.handOver(false);
      this.state = RouteState.WaitingForAck;
    }
  }

  private handOver(toH2: boolean): void {
    const bytes = this.buf;
    this.buf = Buffer.alloc(0);
    this.detach();
    if (toH2) return this.port.toH2(this.socket, bytes);
    // nghttp2 refuses an ACK of SETTINGS it never sent: the router's is taken out.
    const at = this.ackAt;
    this.port.toGrpc(this.socket, Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + FRAME_HEADER_BYTES)]));
  }
}

// ---------------------------------------------------------------------------
// Attach on rebind's transport

const RESPONSE_HEADERS = H2Headers.encode({ ':status': '200', 'content-type': 'application/grpc+proto', 'grpc-accept-encoding': 'identity,deflate,gzip' });
const OK_TRAILERS = H2Headers.encode({ 'grpc-status': '0' });
/** The gRPC message prefix: compressed flag (1 byte) + length (4 bytes, big-endian). */
const PREFIX_BYTES = 5;
/**
 * The one scratch every Attach stream's reports are decoded into: a message
 * is decoded and handled (AttachSession: validated, applied; Group copies
 * what it keeps) synchronously before the next is decoded, so one is enough,
 * and a report allocates no objects of its own.
 */
const SCRATCH = newReplicaMessageScratch();

function statusHeaders(code: number, message: string, trailersOnly: boolean): Record<string, string> {
  const h: Record<string, string> = trailersOnly ? { ':status': '200', 'content-type': 'application/grpc+proto' } : {};
  h['grpc-status'] = String(code);
  // As grpc-js: percent-encoded (the client decodes it).
  h['grpc-message'] = encodeURI(message);
  return h;
}

/** Ends a stream that sent nothing yet with a status (Trailers-Only). */
function trailersOnly(stream: H2Stream, code: number, message: string): void {
  if (stream.closed) return;
  stream.respond(statusHeaders(code, message, true), { endStream: true });
}

/** What the Attach handler on rebind's transport needs. */
export interface AttachStreamDeps {
  /** The replica token (null: none needed). */
  replicaToken: string | null;
  /** Refused calls (the same reasons and callback as controlAuthInterceptor's). */
  authRefused: (reason: string, peer: string) => void;
  /** Counts refused input by reason. */
  refused: (reason: string) => void;
  /** Largest message accepted (limits.maxControlMessageBytes). */
  maxMessageBytes: number;
  /** BalancerMessage -> bytes (the method definition's responseSerialize). */
  serialize: (message: unknown) => Buffer;
  /** The Control service's Attach handler (controlHandlers(...).Attach). */
  attach: (call: never) => void;
}

/** The Attach handler for H2 streams: token check, then an AttachSession over an H2AttachCall. */
export function attachStreamHandler(deps: AttachStreamDeps): (stream: H2Stream) => void {
  const expected = deps.replicaToken === null ? null : bearer(deps.replicaToken);
  return (stream) => {
    if (expected !== null) {
      const verdict = checkBearer(stream.header(AUTH_HEADER), expected);
      if (verdict !== 'ok') {
        deps.authRefused(verdict === 'missing' ? 'missing_token' : 'bad_token', peerOf(stream));
        return trailersOnly(stream, Status.UNAUTHENTICATED, `rebind: ${verdict} replica token (send "authorization: Bearer <token>")`);
      }
    }
    deps.attach(new H2AttachCall(stream, deps) as never);
  };
}

/** The peer as grpc-js's call.getPeer() gives it: `host:port`. */
function peerOf(stream: H2Stream): string {
  const socket = stream.connection.socket as net.Socket;
  if (socket.remoteAddress === undefined) return 'unknown';
  return socket.remotePort !== undefined ? `${socket.remoteAddress}:${socket.remotePort}` : socket.remoteAddress;
}

/**
 * The part of grpc-js's ServerDuplexStream that AttachSession uses, over an
 * H2Stream: events data/end/cancelled/error/close, write(obj), end(),
 * emit('error', {code, details}) to end with a status, writableLength,
 * getPeer(), getAuthContext(). One per attachment; a message costs its
 * decode and nothing else (no promise, no pause/resume).
 */
class H2AttachCall extends EventEmitter {
  /** Serialized messages held while the stream is above its high-water mark. */
  private held: Buffer[] = [];
  private blocked = false;
  /** Status to send once `held` is written (end() or an error status while blocked). */
  private pendingStatus: EncodedHeaders | null = null;
  private statusSent = false;
  private closeEmitted = false;
  /** The prefix of a message split across chunks. */
  private readonly prefix = Buffer.allocUnsafe(PREFIX_BYTES);
  private prefixFill = 0;
  /** The body of a message split across chunks (null: none in progress). */
  private body: Buffer | null = null;
  private bodyFill = 0;
  private bodyCompressed = false;

  constructor(
    private readonly stream: H2Stream,
    private readonly deps: AttachStreamDeps,
  ) {
    super();
    // grpc-js: emit('error', status) on a server stream sends that status.
    this.on('error', (err: { code?: number; details?: string; message?: string }) => this.sendStatus(err.code ?? Status.UNKNOWN, err.details ?? err.message ?? ''));
    stream.onDrain = () => this.drain();
    stream.onClose = (code) => this.closed(code);
    stream.read((chunk, end) => this.onChunk(chunk, end));
  }

  getPeer(): string {
    return peerOf(this.stream);
  }

  getAuthContext(): { transportSecurityType?: string; sslPeerCertificate?: tls.PeerCertificate } {
    const socket = this.stream.connection.socket;
    if (!(socket instanceof tls.TLSSocket) || !socket.authorized) return {};
    const cert = socket.getPeerCertificate();
    return { transportSecurityType: 'ssl', ...(cert.raw ? { sslPeerCertificate: cert } : {}) };
  }

  /** Messages waiting for the peer to read (grpc-js: objects in the Writable's buffer). */
  get writableLength(): number {
    return this.held.length;
  }

  write(message: unknown): boolean {
    if (this.statusSent || this.pendingStatus !== null || this.stream.closed) return false;
    const payload = this.deps.serialize(message);
    const framed = Buffer.allocUnsafe(PREFIX_BYTES + payload.length);
    framed[0] = 0;
    framed.writeUInt32BE(payload.length, 1);
    framed.set(payload, PREFIX_BYTES);
    if (!this.stream.headersSent) this.stream.respond(RESPONSE_HEADERS);
    if (this.blocked) {
      this.held.push(framed);
      return false;
    }
    if (!this.stream.write(framed)) this.blocked = true;
    return !this.blocked;
  }

  /** Ends the call with OK (after what is held). */
  end(): void {
    this.finish(OK_TRAILERS, Status.OK, '');
  }

  private sendStatus(code: number, details: string): void {
    if (code === Status.OK) return this.end();
    // An error ends the attachment: what is held would never be read by a replica that does not read.
    this.held = [];
    this.blocked = false;
    this.finish(H2Headers.encode(statusHeaders(code, details, false)), code, details);
  }

  private finish(trailers: EncodedHeaders, code: number, details: string): void {
    if (this.statusSent || this.stream.closed) return;
    if (!this.stream.headersSent) {
      this.statusSent = true;
      return trailersOnly(this.stream, code, details);
    }
    if (this.held.length > 0) {
      this.pendingStatus = trailers;
      return;
    }
    this.statusSent = true;
    this.stream.end(trailers);
  }

  private drain(): void {
    this.blocked = false;
    while (this.held.length > 0) {
      const next = this.held.shift()!;
      if (!this.stream.write(next)) {
        this.blocked = true;
        return;
      }
    }
    const status = this.pendingStatus;
    if (status !== null) {
      this.pendingStatus = null;
      this.statusSent = true;
      this.stream.end(status);
    }
  }

  private closed(code: number): void {
    this.held = [];
    if (code !== 0 && !this.statusSent) this.emit('cancelled', 'cancelled');
    if (!this.closeEmitted) {
      this.closeEmitted = true;
      this.emit('close');
    }
  }

  /** Fails the call from the transport side (bad framing, size, decode): status, then the session is told. */
  private fail(reason: string, code: number, message: string): void {
    this.deps.refused(reason);
    this.sendStatus(code, message);
    if (!this.closeEmitted) {
      this.closeEmitted = true;
      this.emit('close');
    }
  }

  private onChunk(chunk: Buffer, end: boolean): void {
    let off = 0;
    const n = chunk.length;
    while (off < n && !this.statusSent && !this.closeEmitted) {
      if (this.body !== null) {
        const take = Math.min(this.body.length - this.bodyFill, n - off);
        chunk.copy(this.body, this.bodyFill, off, off + take);
        this.bodyFill += take;
        off += take;
        if (this.bodyFill === this.body.length) {
          const body = this.body;
          this.body = null;
          this.message(body, this.bodyCompressed);
        }
        continue;
      }
      let flag: number;
      let len: number;
      if (this.prefixFill === 0 && n - off >= PREFIX_BYTES) {
        flag = chunk[off]!;
        len = chunk.readUInt32BE(off + 1);
        off += PREFIX_BYTES;
      } else {
        const take = Math.min(PREFIX_BYTES - this.prefixFill, n - off);
        chunk.copy(this.prefix, this.prefixFill, off, off + take);
        this.prefixFill += take;
        off += take;
        if (this.prefixFill < PREFIX_BYTES) break;
        this.prefixFill = 0;
        flag = this.prefix[0]!;
        len = this.prefix.readUInt32BE(1);
      }
      if (len > this.deps.maxMessageBytes) {
        return this.fail('control_message_too_large', Status.RESOURCE_EXHAUSTED, `Received message larger than max (${len} vs ${this.deps.maxMessageBytes})`);
      }
      if (flag > 1) return this.fail('control_bad_framing', Status.INTERNAL, `invalid gRPC message flag ${flag}`);
      if (n - off >= len) {
        // The whole message is in this chunk: decoded in place (the decoder copies what it keeps).
        this.message(chunk.subarray(off, off + len), flag === 1);
        off += len;
      } else {
        this.body = Buffer.allocUnsafe(len);
        this.bodyFill = 0;
        this.bodyCompressed = flag === 1;
      }
    }
    if (end && !this.statusSent && !this.closeEmitted) {
      if (this.body !== null || this.prefixFill > 0) return this.fail('control_bad_framing', Status.INTERNAL, 'the request ended inside a message');
      this.emit('end');
    }
  }

  private message(bytes: Buffer, compressed: boolean): void {
    if (compressed) {
      const encoding = this.stream.header('grpc-encoding') ?? 'identity';
      const maxOutputLength = this.deps.maxMessageBytes;
      try {
        if (encoding === 'gzip') bytes = zlib.gunzipSync(bytes, { maxOutputLength });
        else if (encoding === 'deflate') bytes = zlib.inflateSync(bytes, { maxOutputLength });
        else {
          return this.fail('control_bad_encoding', Status.UNIMPLEMENTED, `Received message compressed with unsupported encoding "${encoding}"`);
        }
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) {
          return this.fail('control_message_too_large', Status.RESOURCE_EXHAUSTED, `Received message that decompresses to a size larger than ${maxOutputLength}`);
        }
        return this.fail('control_bad_encoding', Status.INTERNAL, `cannot decompress the message (${encoding}): ${(err as Error).message}`);
      }
    }
    // Messages and codes as grpc-js's server gives them.
    let decoded: unknown;
    try {
      decoded = decodeReplicaMessageInto(bytes, SCRATCH);
    } catch (err) {
      return this.fail('control_bad_message', Status.INTERNAL, `Error deserializing request: ${(err as Error).message}`);
    }
    this.emit('data', decoded);
  }
}

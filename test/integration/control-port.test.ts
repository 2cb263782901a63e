/**
 * The control port's listener: a replica's Attach connection is served by
 * rebind's transport (src/h2), any other first call by grpc-js (injected
 * connection); the router's bounds; gRPC framing on the Attach path.
 */
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as zlib from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import type { Balancer } from '../../src/index';
import { controlProto } from '../../src/common/proto';
import { attachStreamHandler, ControlPort } from '../../src/balancer/control-port';
import { tokenMetadata } from '../../src/balancer/auth';
import { startBalancer, startReplica, stopReplica, waitFor, type TestReplica } from '../support/cluster';
import { startEchoServer } from '../support/echo';
import { attach } from '../../src/index';
import { makePki } from '../support/tls';

const GROUPS = [{ name: 'echo', reportIntervalMs: 200 }];
const REPLICA_TOKEN = 'replica-token-0123456789abcdef';

const balancers: Balancer[] = [];
const replicas: TestReplica[] = [];
const sessions: http2.ClientHttp2Session[] = [];
const closers: (() => void)[] = [];
afterEach(async () => {
  for (const s of sessions.splice(0)) s.destroy();
  for (const c of closers.splice(0)) c();
  for (const r of replicas.splice(0)) await stopReplica(r).catch(() => undefined);
  for (const b of balancers.splice(0)) await b.stop();
});

async function balancer(extra: Record<string, unknown> = {}): Promise<Balancer> {
  const b = await startBalancer(GROUPS, extra);
  balancers.push(b);
  return b;
}

/** grpc-js's sessions on the control server (connections it serves itself). */
function grpcSessions(b: Balancer): number {
  return (b as unknown as { controlServer: { sessions: Map<unknown, unknown> } }).controlServer.sessions.size;
}

const Attach = () => controlProto().rebind.v1.Control.service.Attach;
const encodeHello = (address: string): Buffer =>
  Attach().requestSerialize({ hello: { protocolVersion: 1, group: 'echo', address, methods: [{ path: '/rebind.test.Echo/Unary', kind: 'UNARY' }], replicaId: '' } });
const frameMessage = (payload: Buffer, compressed = 0): Buffer => {
  const prefix = Buffer.alloc(5);
  prefix[0] = compressed;
  prefix.writeUInt32BE(payload.length, 1);
  return Buffer.concat([prefix, payload]);
};

interface RawResult {
  rstCode: number | undefined;
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders;
  messages: Record<string, unknown>[];
}

/** A gRPC call by hand on a node:http2 session: writes `chunks` (with `gapMs` between them), collects the answer. */
function rawCall(session: http2.ClientHttp2Session, path: string, chunks: Buffer[], extra: http2.OutgoingHttpHeaders = {}, gapMs = 0, endAfter = true): Promise<RawResult> {
  return new Promise((resolve) => {
    const req = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...extra });
    let headers: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const data: Buffer[] = [];
    req.on('response', (h) => (headers = h));
    req.on('trailers', (t) => (trailers = t));
    req.on('data', (c: Buffer) => data.push(c));
    req.on('error', () => undefined);
    req.on('close', () => {
      const all = Buffer.concat(data);
      const messages: Record<string, unknown>[] = [];
      for (let off = 0; off + 5 <= all.length; ) {
        const len = all.readUInt32BE(off + 1);
        messages.push(Attach().responseDeserialize(all.subarray(off + 5, off + 5 + len)) as Record<string, unknown>);
        off += 5 + len;
      }
      resolve({ rstCode: req.rstCode, headers, trailers, messages });
    });
    void (async () => {
      for (const c of chunks) {
        req.write(c);
        if (gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
      }
      if (endAfter) req.end();
      else setTimeout(() => req.close(), 500);
    })();
  });
}

function connect(address: string): http2.ClientHttp2Session {
  const s = http2.connect(`http://${address}`);
  s.on('error', () => undefined);
  sessions.push(s);
  return s;
}

/** grpc-status of a Trailers-Only answer (in headers) or of the trailers. */
const statusOf = (r: RawResult): number => Number(r.trailers['grpc-status'] ?? r.headers['grpc-status']);
const messageOf = (r: RawResult): string => decodeURI(String(r.trailers['grpc-message'] ?? r.headers['grpc-message'] ?? ''));

describe('control port routing', () => {
  it("serves a replica's Attach connection on rebind's transport, not on grpc-js", async () => {
    const b = await balancer();
    const r = await startReplica(b, 'a');
    replicas.push(r);
    await waitFor(() => b.registry.groups.get('echo')!.members.size === 1, 10_000, 20, 'attachment');
    const stats = b.controlPort.stats();
    expect(stats.routedToH2).toBe(1);
    expect(stats.routedToGrpc).toBe(0);
    expect(stats.h2Connections).toBe(1);
    expect(stats.counters.streamsOpened).toBe(1);
    expect(grpcSessions(b)).toBe(0);
    // Reports flow on it: the member's report count grows.
    const member = [...b.registry.groups.get('echo')!.members.values()][0]!;
    const seq0 = member.lastSeq;
    await waitFor(() => member.lastSeq > seq0, 10_000, 20, 'a load report');
    const text = await b.metrics.metrics();
    expect(text).toMatch(/^rebind_control_connections_total\{server="rebind"\} 1$/m);
    expect(text).toMatch(/^rebind_control_connections_total\{server="grpc-js"\} 0$/m);
    expect(text).toMatch(/^rebind_control_h2_connections 1$/m);
    expect(text).toMatch(/^rebind_control_h2_events_total\{event="stream_opened"\} 1$/m);
  });

  it("stop() ends the Control connections: the replica's attachment is lost", async () => {
    const b = await startBalancer(GROUPS);
    const r = await startReplica(b, 'a');
    replicas.push(r);
    expect(b.controlPort.stats().h2Connections).toBe(1);
    await b.stop();
    expect(b.controlPort.stats().h2Connections).toBe(0);
    await waitFor(() => r.replica.state !== 'attached', 10_000, 20, 'the replica to notice');
  });

  it('hands a connection whose first call is Admin (ListGroups) to grpc-js', async () => {
    const b = await balancer();
    const Admin = controlProto().rebind.v1.Admin;
    const client = new Admin(b.controlAddress, grpc.credentials.createInsecure());
    closers.push(() => client.close());
    const groups = await new Promise<unknown>((resolve, reject) => client.listGroups({}, (err: Error | null, res: unknown) => (err ? reject(err) : resolve(res))));
    expect(JSON.stringify(groups)).toContain('echo');
    const stats = b.controlPort.stats();
    expect(stats.routedToGrpc).toBe(1);
    expect(stats.routedToH2).toBe(0);
    expect(grpcSessions(b)).toBe(1);
  });

  it('refuses a second, non-Attach call on a Control connection as not processed (GOAWAY + REFUSED_STREAM); the Attach stream goes on', async () => {
    const b = await balancer();
    const session = connect(b.controlAddress);
    let goaway = -1;
    session.on('goaway', (code) => (goaway = code));
    const attach = rawCall(session, '/rebind.v1.Control/Attach', [frameMessage(encodeHello('127.0.0.1:6101'))], {}, 0, false);
    await waitFor(() => b.registry.groups.get('echo')!.members.size === 1, 10_000, 20, 'attachment');
    const other = await rawCall(session, '/rebind.v1.Admin/ListGroups', [frameMessage(Buffer.alloc(0))]);
    expect(other.rstCode).toBe(http2.constants.NGHTTP2_REFUSED_STREAM);
    expect(goaway).toBe(http2.constants.NGHTTP2_NO_ERROR);
    expect(b.refusals.get('control_call_moved')).toBe(1);
    const a = await attach;
    expect(a.messages[0]).toHaveProperty('attached');
  });

  it('serves an Admin call made on the channel of a Control call: grpc-js retries the refused call on a new connection', async () => {
    const b = await balancer();
    const proto = controlProto();
    // Same target, same options: grpc-js gives both clients one subchannel (one connection).
    const control = new proto.rebind.v1.Control(b.controlAddress, grpc.credentials.createInsecure());
    const admin = new proto.rebind.v1.Admin(b.controlAddress, grpc.credentials.createInsecure());
    closers.push(() => (control.close(), admin.close()));
    const call = control.attach();
    call.on('error', () => undefined);
    const first = new Promise<Record<string, unknown>>((resolve) => call.once('data', resolve));
    call.write({ hello: { protocolVersion: 1, group: 'echo', address: '127.0.0.1:6104', methods: [{ path: '/rebind.test.Echo/Unary', kind: 'UNARY' }], replicaId: '' } });
    expect(await first).toHaveProperty('attached');
    const groups = await new Promise<unknown>((resolve, reject) => admin.listGroups({}, (err: Error | null, res: unknown) => (err ? reject(err) : resolve(res))));
    expect(JSON.stringify(groups)).toContain('echo');
    expect(b.controlPort.stats().routedToH2).toBe(1);
    expect(b.controlPort.stats().routedToGrpc).toBe(1);
    expect(b.refusals.get('control_call_moved')).toBe(1);
    // The attachment is still there.
    expect(b.registry.groups.get('echo')!.members.size).toBe(1);
    call.cancel();
  });

  it('refuses a bad replica token on the Attach path with UNAUTHENTICATED (Trailers-Only), counted', async () => {
    const b = await balancer({ security: { replicaToken: REPLICA_TOKEN } });
    const session = connect(b.controlAddress);
    const bad = await rawCall(session, '/rebind.v1.Control/Attach', [frameMessage(encodeHello('127.0.0.1:6102'))], { authorization: 'Bearer wrong-token-wrong-token-wrong' });
    expect(statusOf(bad)).toBe(grpc.status.UNAUTHENTICATED);
    expect(bad.headers['grpc-status']).toBe(String(grpc.status.UNAUTHENTICATED));
    expect(messageOf(bad)).toBe('rebind: invalid replica token (send "authorization: Bearer <token>")');
    const missing = await rawCall(session, '/rebind.v1.Control/Attach', [frameMessage(encodeHello('127.0.0.1:6102'))]);
    expect(statusOf(missing)).toBe(grpc.status.UNAUTHENTICATED);
    expect(b.refusals.get('bad_token')).toBe(1);
    expect(b.refusals.get('missing_token')).toBe(1);
    expect(b.controlPort.stats().routedToH2).toBe(1);
    // The right token attaches (a grpc-js client, as a replica).
    const client = new (controlProto().rebind.v1.Control)(b.controlAddress, grpc.credentials.createInsecure());
    closers.push(() => client.close());
    const call = client.attach(tokenMetadata(REPLICA_TOKEN));
    call.on('error', () => undefined);
    const first = new Promise<Record<string, unknown>>((resolve) => call.once('data', resolve));
    call.write({ hello: { protocolVersion: 1, group: 'echo', address: '127.0.0.1:6103', methods: [{ path: '/rebind.test.Echo/Unary', kind: 'UNARY' }], replicaId: '' } });
    expect(await first).toHaveProperty('attached');
    call.cancel();
  });
});

describe('gRPC framing on the Attach path', () => {
  it('takes a message split across chunks and several messages in one chunk', async () => {
    const b = await balancer();
    const session = connect(b.controlAddress);
    const hello = frameMessage(encodeHello('127.0.0.1:6201'));
    // The prefix alone, then the body in two parts, 30 ms apart.
    const split = rawCall(session, '/rebind.v1.Control/Attach', [hello.subarray(0, 3), hello.subarray(3, 9), hello.subarray(9)], {}, 30, false);
    await waitFor(() => b.registry.groups.get('echo')!.members.size === 1, 10_000, 20, 'attachment from a split hello');
    expect((await split).messages[0]).toHaveProperty('attached');
    // Hello + detach in one chunk: attached, then the stream ends OK.
    const detach = frameMessage(Attach().requestSerialize({ detach: { reason: 'done' } }));
    const one = await rawCall(session, '/rebind.v1.Control/Attach', [Buffer.concat([frameMessage(encodeHello('127.0.0.1:6202')), detach])]);
    expect(one.messages[0]).toHaveProperty('attached');
    expect(statusOf(one)).toBe(grpc.status.OK);
  });

  it('refuses a message above limits.maxControlMessageBytes with RESOURCE_EXHAUSTED', async () => {
    const b = await balancer({ limits: { maxControlMessageBytes: 4096 } });
    const session = connect(b.controlAddress);
    const prefix = Buffer.alloc(5);
    prefix.writeUInt32BE(100_000, 1);
    const r = await rawCall(session, '/rebind.v1.Control/Attach', [prefix, Buffer.alloc(1000)]);
    expect(statusOf(r)).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(messageOf(r)).toBe('Received message larger than max (100000 vs 4096)');
    expect(b.refusals.get('control_message_too_large')).toBe(1);
  });

  it('decompresses a gzip message and refuses an unsupported grpc-encoding with UNIMPLEMENTED', async () => {
    const b = await balancer();
    const session = connect(b.controlAddress);
    const gz = await rawCall(session, '/rebind.v1.Control/Attach', [frameMessage(zlib.gzipSync(encodeHello('127.0.0.1:6301')), 1)], { 'grpc-encoding': 'gzip' }, 0, false);
    expect(gz.messages[0]).toHaveProperty('attached');
    const snappy = await rawCall(session, '/rebind.v1.Control/Attach', [frameMessage(encodeHello('127.0.0.1:6302'), 1)], { 'grpc-encoding': 'snappy' });
    expect(statusOf(snappy)).toBe(grpc.status.UNIMPLEMENTED);
    expect(messageOf(snappy)).toBe('Received message compressed with unsupported encoding "snappy"');
    const none = await rawCall(session, '/rebind.v1.Control/Attach', [frameMessage(encodeHello('127.0.0.1:6303'), 1)]);
    expect(statusOf(none)).toBe(grpc.status.UNIMPLEMENTED);
    expect(b.refusals.get('control_bad_encoding')).toBe(2);
  });
});

describe('control port router bounds', () => {
  async function port(opts: { routeTimeoutMs?: number; maxRouteBytes?: number; maxRoutingConnections?: number }): Promise<{ address: string; refused: Map<string, number>; port: ControlPort }> {
    const refused = new Map<string, number>();
    const server = new grpc.Server();
    const p = new ControlPort({ grpcServer: server, tls: null, onAttach: () => undefined, refused: (r) => refused.set(r, (refused.get(r) ?? 0) + 1), ...opts });
    closers.push(() => (void p.close(), server.forceShutdown()));
    return { address: await p.listen('127.0.0.1:0'), refused, port: p };
  }

  function rawSocket(address: string): Promise<{ socket: net.Socket; closed: Promise<number> }> {
    const [host, portText] = [address.slice(0, address.lastIndexOf(':')), address.slice(address.lastIndexOf(':') + 1)];
    return new Promise((resolve) => {
      const started = Date.now();
      const socket = net.connect(Number(portText), host, () => resolve({ socket, closed: new Promise((r) => socket.on('close', () => r(Date.now() - started))) }));
      socket.on('error', () => undefined);
      socket.resume(); // Read (the router's SETTINGS): 'close' comes after 'end'.
      closers.push(() => socket.destroy());
    });
  }

  it('closes a connection that sends the preface and nothing else after the route timeout, counted', async () => {
    const { address, refused, port: p } = await port({ routeTimeoutMs: 300 });
    const { socket, closed } = await rawSocket(address);
    socket.write(Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'));
    const ms = await closed;
    expect(ms).toBeGreaterThanOrEqual(250);
    expect(ms).toBeLessThan(5000);
    expect(refused.get('control_route_timeout')).toBe(1);
    expect(p.stats().routing).toBe(0);
  });

  it('closes a connection that sends more than the byte bound before a header block, counted', async () => {
    const { address, refused } = await port({ routeTimeoutMs: 60_000, maxRouteBytes: 1024 });
    const { socket, closed } = await rawSocket(address);
    // Preface, then an unknown frame type (0x20) of 2,000 bytes: no header block within 1 KiB.
    const unknown = Buffer.alloc(9 + 2000);
    unknown.writeUIntBE(2000, 0, 3);
    unknown[3] = 0x20;
    socket.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'), unknown]));
    const ms = await closed;
    expect(ms).toBeLessThan(5000);
    expect(refused.get('control_route_too_large')).toBe(1);
  });

  it('closes a connection beyond the connections being routed at once, counted', async () => {
    const { address, refused, port: p } = await port({ routeTimeoutMs: 60_000, maxRoutingConnections: 2 });
    await rawSocket(address);
    await rawSocket(address);
    await waitFor(() => p.stats().routing === 2, 5000);
    const third = await rawSocket(address);
    const ms = await third.closed;
    expect(ms).toBeLessThan(5000);
    expect(refused.get('control_route_overflow')).toBe(1);
    expect(p.stats().routing).toBe(2);
  });

  it('closes a connection that does not start with the HTTP/2 preface, counted', async () => {
    const { address, refused } = await port({ routeTimeoutMs: 60_000 });
    const { socket, closed } = await rawSocket(address);
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await closed;
    expect(refused.get('control_bad_preface')).toBe(1);
  });
});

describe('control port with mTLS', () => {
  it("serves a replica's Attach over TLS on rebind's transport (identity checked against its certificate) and an Admin call on grpc-js", async () => {
    const pki = makePki({ clientSan: 'IP:127.0.0.1' });
    const b = await balancer({
      security: { replicaToken: REPLICA_TOKEN, controlTls: { certFile: pki.serverCertFile, keyFile: pki.serverKeyFile, caFile: pki.caFile, requireClientCert: true } },
    });
    const credentials = grpc.credentials.createSsl(pki.ca, pki.clientKey, pki.clientCert);
    const { server, address } = await startEchoServer('A');
    closers.push(() => server.forceShutdown());
    const replica = await attach(server, { balancer: b.controlAddress, group: 'echo', address, token: REPLICA_TOKEN, credentials });
    closers.push(() => void replica.detach());
    expect(replica.state).toBe('attached');
    // A second replica whose certificate does not name the address it claims: refused by the identity check.
    const other = await startEchoServer('B');
    closers.push(() => other.server.forceShutdown());
    const err = (await attach(other.server, { balancer: b.controlAddress, group: 'echo', address: other.address.replace('127.0.0.1', 'localhost'), token: REPLICA_TOKEN, credentials }).catch((e) => e)) as Error;
    expect(err.message).toContain('is not an identity of the client certificate');
    expect(b.controlPort.stats().routedToH2).toBeGreaterThanOrEqual(2);
    const admin = new (controlProto().rebind.v1.Admin)(b.controlAddress, credentials);
    closers.push(() => admin.close());
    const groups = await new Promise<unknown>((resolve, reject) => admin.listGroups({}, (e: Error | null, res: unknown) => (e ? reject(e) : resolve(res))));
    expect(JSON.stringify(groups)).toContain('echo');
    expect(b.controlPort.stats().routedToGrpc).toBe(1);
    expect(grpcSessions(b)).toBe(1);
  });

  it("gives grpc-js's handlers the peer and the verified client certificate of an injected TLS connection", async () => {
    const pki = makePki({ clientSan: 'IP:127.0.0.1' });
    const server = new grpc.Server();
    const seen: { peer?: string; auth?: ReturnType<grpc.ServerUnaryCall<Buffer, Buffer>["getAuthContext"]> } = {};
    const identity = (b: Buffer) => b;
    const service: grpc.ServiceDefinition = {
      Who: { path: '/test.T/Who', requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity, originalName: 'who' },
    };
    server.addService(service, {
      Who: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        seen.peer = call.getPeer();
        seen.auth = call.getAuthContext();
        cb(null, Buffer.from('ok'));
      },
    });
    const p = new ControlPort({ grpcServer: server, tls: { cert: pki.serverCert, key: pki.serverKey, ca: pki.ca, requireClientCert: true }, onAttach: () => undefined, refused: () => undefined });
    closers.push(() => (void p.close(), server.forceShutdown()));
    const address = await p.listen('127.0.0.1:0');
    const Client = grpc.makeGenericClientConstructor(service, 'T');
    const client = new Client(address, grpc.credentials.createSsl(pki.ca, pki.clientKey, pki.clientCert));
    closers.push(() => client.close());
    const reply = await new Promise<Buffer>((resolve, reject) =>
      (client as unknown as { Who(req: Buffer, cb: (e: Error | null, r?: Buffer) => void): void }).Who(Buffer.from('x'), (e, r) => (e ? reject(e) : resolve(r!))),
    );
    expect(reply.toString()).toBe('ok');
    expect(seen.peer).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(seen.auth?.transportSecurityType).toBe('ssl');
    expect(seen.auth?.sslPeerCertificate?.subjectaltname).toBe('IP Address:127.0.0.1');
    expect(p.stats().routedToGrpc).toBe(1);
  });
});

describe('Attach call adapter: flow control', () => {
  it('holds messages a client does not read (writableLength counts them), and sends them in order once it reads', async () => {
    type Call = { write(m: unknown): boolean; writableLength: number; end(): void; on(e: string, f: (...a: unknown[]) => void): void };
    let call: Call | null = null;
    const server = new grpc.Server();
    const p = new ControlPort({
      grpcServer: server,
      tls: null,
      refused: () => undefined,
      onAttach: attachStreamHandler({
        replicaToken: null,
        authRefused: () => undefined,
        refused: () => undefined,
        maxMessageBytes: 1 << 20,
        // 1,000-byte messages numbered in their first 4 bytes.
        serialize: (m) => {
          const b = Buffer.alloc(1000);
          b.writeUInt32BE((m as { n: number }).n, 0);
          return b;
        },
        attach: ((c: Call) => (call = c)) as (call: never) => void,
      }),
    });
    closers.push(() => (void p.close(), server.forceShutdown()));
    const address = await p.listen('127.0.0.1:0');
    const session = connect(address);
    const req = session.request({ ':method': 'POST', ':path': '/rebind.v1.Control/Attach', 'content-type': 'application/grpc', te: 'trailers' });
    req.on('error', () => undefined);
    req.pause();
    await waitFor(() => call !== null, 5000, 10, 'the call');
    const c = call as unknown as Call;
    let accepted = 0;
    for (let n = 0; n < 1000; n++) if (c.write({ n })) accepted++;
    // 1 MB against the client's 64 KiB window and the stream's 64 KiB high-water mark: most are held.
    expect(accepted).toBeLessThan(1000);
    expect(c.writableLength).toBeGreaterThan(500);
    c.end();
    const data: Buffer[] = [];
    let trailers: http2.IncomingHttpHeaders = {};
    req.on('trailers', (t) => (trailers = t));
    req.on('data', (d: Buffer) => data.push(d));
    const closed = new Promise<void>((resolve) => req.on('close', () => resolve()));
    req.resume();
    req.end();
    await closed;
    const all = Buffer.concat(data);
    expect(all.length).toBe(1000 * 1005);
    for (let n = 0; n < 1000; n++) expect(all.readUInt32BE(n * 1005 + 5)).toBe(n);
    expect(trailers['grpc-status']).toBe('0');
    expect(c.writableLength).toBe(0);
  });
});

/**
 * The data port on rebind's own HTTP/2 transport (src/h2), seen from a raw
 * socket: a bind is answered with exactly one HEADERS frame carrying
 * END_STREAM (no DATA, no CONTINUATION, no RST_STREAM after it), and the
 * transport's own defences (here: rapid reset, CVE-2023-44487) show on
 * /metrics.
 */
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { Balancer } from '../../src/index';
import { CLIENT_PREFACE, ErrorCode, Flag, frame, FrameReader, FrameType, rstStreamFrame, settingsFrame, type FrameSink } from '../../src/h2/frames';
import { HpackDecoder, HpackEncoder } from '../../src/h2/hpack';
import { clientUserAgent, FORWARD_STATUS, FORWARD_TRAILER } from '../../src/common/wire';
import { echoClient, startBalancer, startReplica, stopReplica, unary } from '../support/cluster';
import { makePki } from '../support/tls';

const PATH = '/rebind.test.Echo/Unary';

interface Frame {
  type: number;
  flags: number;
  sid: number;
  payload: Buffer;
}

/** A client that writes frames and keeps every frame it reads. */
class RawClient implements FrameSink {
  readonly frames: Frame[] = [];
  private readonly reader = new FrameReader(this, 1 << 24);
  closed = false;

  constructor(readonly sock: net.Socket) {
    sock.on('data', (c: Buffer) => this.reader.push(c));
    sock.on('error', () => {});
    sock.on('close', () => (this.closed = true));
  }

  static async open(address: string): Promise<RawClient> {
    const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
    const sock = net.connect(port, host);
    await new Promise((r) => sock.once('connect', r));
    const c = new RawClient(sock);
    c.sock.write(Buffer.concat([CLIENT_PREFACE, settingsFrame([])]));
    return c;
  }

  onFrame(type: number, flags: number, sid: number, payload: Buffer): void {
    this.frames.push({ type, flags, sid, payload: Buffer.from(payload) });
    // Acknowledge the server's SETTINGS as a real client does.
    if (type === FrameType.SETTINGS && (flags & Flag.ACK) === 0) this.sock.write(frame(FrameType.SETTINGS, Flag.ACK, 0));
  }

  async waitFor(pred: (f: Frame) => boolean, timeoutMs = 10_000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const f = this.frames.find(pred);
      if (f !== undefined) return f;
      if (this.closed || Date.now() > deadline) throw new Error(`frame not seen (closed=${this.closed}); got types ${this.frames.map((x) => x.type).join(',')}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

/** A rebind-aware client's first call (a bind), HEADERS without END_STREAM. */
function bindHeaders(sid: number, clientId: string, endStream: boolean): Buffer {
  const block = HpackEncoder.encode([
    [':method', 'POST'],
    [':scheme', 'http'],
    [':path', PATH],
    [':authority', 'balancer'],
    ['content-type', 'application/grpc'],
    ['te', 'trailers'],
    ['user-agent', clientUserAgent(clientId)],
  ]);
  return frame(FrameType.HEADERS, Flag.END_HEADERS | (endStream ? Flag.END_STREAM : 0), sid, block);
}

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups.length = 0;
});

async function setUp(extra: Record<string, unknown> = {}): Promise<{ balancer: Balancer; replica: string }> {
  const balancer = await startBalancer([{ name: 'echo', granularity: 'per-session', strategy: 'round_robin', reportIntervalMs: 200 }], extra);
  cleanups.push(() => balancer.stop());
  const r = await startReplica(balancer, 'A');
  cleanups.push(() => stopReplica(r));
  return { balancer, replica: r.address };
}

async function open(address: string): Promise<RawClient> {
  const c = await RawClient.open(address);
  cleanups.push(() => void c.sock.destroy());
  return c;
}

describe('the data port on rebind’s HTTP/2 transport', () => {
  it('answers a bind with one HEADERS frame carrying END_STREAM: no DATA, no CONTINUATION, no RST_STREAM', async () => {
    const { balancer, replica } = await setUp();
    const c = await open(balancer.address);
    // As grpc-js sends a unary call: HEADERS, then the message with END_STREAM, in one write.
    c.sock.write(Buffer.concat([bindHeaders(1, 'raw-client-1', false), frame(FrameType.DATA, Flag.END_STREAM, 1, Buffer.from([0, 0, 0, 0, 0]))]));
    const answer = await c.waitFor((f) => f.sid === 1 && f.type === FrameType.HEADERS);
    // A PING after the answer: its ACK comes after anything else the server sent on stream 1.
    c.sock.write(frame(FrameType.PING, 0, 0, Buffer.alloc(8, 7)));
    await c.waitFor((f) => f.type === FrameType.PING && (f.flags & Flag.ACK) !== 0);
    const onStream = c.frames.filter((f) => f.sid === 1);
    expect(onStream.map((f) => f.type)).toEqual([FrameType.HEADERS]);
    expect(answer.flags & (Flag.END_STREAM | Flag.END_HEADERS)).toBe(Flag.END_STREAM | Flag.END_HEADERS);
    const fields: string[] = [];
    expect(new HpackDecoder().decode(answer.payload, fields)).toBe(true);
    const get = (name: string) => fields[fields.indexOf(name) + 1];
    expect(get(':status')).toBe('200');
    expect(get('grpc-status')).toBe(String(FORWARD_STATUS));
    expect(get(FORWARD_TRAILER)).toBe(replica);
  });

  it('shows a rapid-reset attack on the data port on /metrics (GOAWAY ENHANCE_YOUR_CALM)', async () => {
    const { balancer } = await setUp();
    const c = await open(balancer.address);
    await c.waitFor((f) => f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) === 0);
    // Open and cancel streams faster than any client should: beyond the transport's resets per window.
    const frames: Buffer[] = [];
    for (let i = 0; i < 1500; i++) {
      const sid = 1 + 2 * i;
      frames.push(bindHeaders(sid, 'raw-client-2', false), rstStreamFrame(sid, ErrorCode.CANCEL));
    }
    c.sock.write(Buffer.concat(frames));
    const goaway = await c.waitFor((f) => f.type === FrameType.GOAWAY);
    expect(goaway.payload.readUInt32BE(4)).toBe(ErrorCode.ENHANCE_YOUR_CALM);
    const metrics = await (await fetch(`http://${balancer.adminAddress}/metrics`)).text();
    expect(metrics).toMatch(/^rebind_data_h2_events_total\{event="rapid_reset"\} 1$/m);
    expect(metrics).toMatch(/^rebind_data_h2_goaways_total\{code="ENHANCE_YOUR_CALM"\} 1$/m);
    expect(metrics).toMatch(/^rebind_data_h2_events_total\{event="reset_received"\} 10\d\d$/m);
  });

  it('closes a connection that keeps getting refused with GOAWAY ENHANCE_YOUR_CALM (data_connection_abusive)', async () => {
    const { balancer } = await setUp();
    const c = await open(balancer.address);
    // Calls to a path no group serves: refusals the caller brings on itself, 50 allowed per 10 s.
    const block = HpackEncoder.encode([
      [':method', 'POST'],
      [':scheme', 'http'],
      [':path', '/nobody.Serves/This'],
      [':authority', 'balancer'],
      ['content-type', 'application/grpc'],
    ]);
    const frames: Buffer[] = [];
    for (let i = 0; i < 60; i++) frames.push(frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 1 + 2 * i, block));
    c.sock.write(Buffer.concat(frames));
    const goaway = await c.waitFor((f) => f.type === FrameType.GOAWAY);
    expect(goaway.payload.readUInt32BE(4)).toBe(ErrorCode.ENHANCE_YOUR_CALM);
    expect(balancer.refusals.get('data_connection_abusive')).toBe(1);
    // 51 refusals answered (Trailers-Only UNIMPLEMENTED) before the close.
    expect(c.frames.filter((f) => f.type === FrameType.HEADERS).length).toBeGreaterThanOrEqual(51);
  });

  it('with security.dataTls.requireClientCert, binds a client that shows a certificate and refuses one that does not', async () => {
    const pki = makePki();
    const { balancer, replica } = await setUp({
      security: { dataTls: { certFile: pki.serverCertFile, keyFile: pki.serverKeyFile, caFile: pki.caFile, requireClientCert: true } },
    });
    const bindOver = (options: http2.SecureClientSessionOptions): Promise<http2.IncomingHttpHeaders | Error> =>
      new Promise((resolve) => {
        const session = http2.connect(`https://${balancer.address}`, options);
        cleanups.push(() => void session.destroy());
        session.on('error', (e) => resolve(e));
        const req = session.request({ ':method': 'POST', ':path': PATH, 'content-type': 'application/grpc', te: 'trailers', 'user-agent': clientUserAgent('tls-client') });
        req.on('response', (h) => resolve(h));
        req.on('error', (e) => resolve(e));
        req.end(Buffer.from([0, 0, 0, 0, 0]));
      });
    const ok = await bindOver({ ca: pki.ca, cert: pki.clientCert, key: pki.clientKey, servername: 'localhost' });
    expect(ok).not.toBeInstanceOf(Error);
    expect((ok as http2.IncomingHttpHeaders)['grpc-status']).toBe(String(FORWARD_STATUS));
    expect((ok as http2.IncomingHttpHeaders)[FORWARD_TRAILER]).toBe(replica);
    const refused = await bindOver({ ca: pki.ca, servername: 'localhost' });
    expect(refused).toBeInstanceOf(Error);
  });

  it('relays 2,000 calls over one upstream connection without losing it (no RST_STREAM on calls complete both ways)', async () => {
    // A long report interval: a loaded machine must not make the one member look dead mid-run.
    const balancer = await startBalancer([{ name: 'echo', granularity: 'per-request', strategy: 'round_robin', reportIntervalMs: 1000 }]);
    cleanups.push(() => balancer.stop());
    const r = await startReplica(balancer, 'A');
    cleanups.push(() => stopReplica(r));
    const client = echoClient(balancer.address);
    cleanups.push(() => client.close());
    const errors = new Map<string, number>();
    // Four callers, 500 calls each, sequentially: past the replica's 1,000 invalid frames if each call ended with an RST_STREAM it no longer knows.
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        for (let i = 0; i < 500; i++) {
          await unary(client, { text: 'x' }, undefined, { deadline: Date.now() + 30_000 }).catch((e: Error) => errors.set(e.message, (errors.get(e.message) ?? 0) + 1));
        }
      }),
    );
    expect([...errors]).toEqual([]);
    expect(balancer.registry.groups.get('echo')!.counters.proxiedCalls).toBe(2000);
    // The relay's own HTTP/2 client towards the replica, on /metrics: one connection carried them all.
    const metrics = await (await fetch(`http://${balancer.adminAddress}/metrics`)).text();
    expect(metrics).toMatch(/^rebind_upstream_h2_events_total\{event="stream_opened"\} 2000$/m);
    expect(metrics).toMatch(/^rebind_upstream_h2_events_total\{event="connection_opened"\} 1$/m);
    expect(metrics).toMatch(/^rebind_upstream_h2_events_total\{event="goaway_received"\} 0$/m);
    expect(metrics).toMatch(/^rebind_upstream_connections 1$/m);
  }, 120_000);
});

/**
 * The relay's upstream side (UpstreamPool on rebind's HTTP/2 client) against
 * replicas that do what grpc-js servers seldom do: GOAWAY with calls in
 * flight, no answer to keepalive pings. The data port is a bare
 * createH2Server calling proxyStream, the client node:http2.
 */
import * as http2 from 'node:http2';
import * as net from 'node:net';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { proxyStream, UpstreamPool } from '../../src/balancer/proxy';
import type { ProxyConfig } from '../../src/balancer/config';
import { createH2Server } from '../../src/h2';
import { CLIENT_PREFACE, Flag, FrameType, settingsFrame, SETTINGS_ACK_FRAME } from '../../src/h2/frames';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A data port relaying every call to `replica`; `done` counts finished calls. */
async function relay(replica: string, proxy: Partial<ProxyConfig> = {}): Promise<{ address: string; pool: UpstreamPool; done: () => number }> {
  const pool = new UpstreamPool(pino({ level: 'silent' }), null, proxy);
  let done = 0;
  const server = createH2Server({}, (stream) => proxyStream(pool, stream, replica, { done: () => done++ }, 'marker'));
  const addr = await server.listen(0);
  cleanups.push(() => {
    pool.close();
    server.destroy();
  });
  return { address: `127.0.0.1:${addr.port}`, pool, done: () => done };
}

function session(address: string): http2.ClientHttp2Session {
  const s = http2.connect(`http://${address}`);
  s.on('error', () => undefined);
  cleanups.push(() => s.destroy());
  return s;
}

/** A gRPC-shaped call; resolves with grpc-status and grpc-message (from trailers or Trailers-Only headers). */
function call(s: http2.ClientHttp2Session, path = '/svc/M', extra: http2.OutgoingHttpHeaders = {}): Promise<{ status: string; message: string }> {
  return new Promise((resolve) => {
    const req = s.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...extra });
    let out = { status: '', message: '' };
    const take = (h: http2.IncomingHttpHeaders) => {
      if (h['grpc-status'] !== undefined) out = { status: String(h['grpc-status']), message: decodeURIComponent(String(h['grpc-message'] ?? '')) };
    };
    req.on('response', take);
    req.on('trailers', take);
    req.on('error', () => undefined);
    req.on('data', () => undefined);
    req.on('close', () => resolve(out));
    req.end(Buffer.from([0, 0, 0, 0, 1, 0x41]));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(5);
  }
}

describe('relay upstream: a replica that sends GOAWAY mid-call', () => {
  it('the call it took finishes, the call above its last-stream-id fails UNAVAILABLE naming the GOAWAY, the next call goes on a new connection', async () => {
    const replica = http2.createServer();
    const held: http2.ServerHttp2Stream[] = [];
    let sessions = 0;
    replica.on('session', (s) => {
      sessions++;
      s.on('error', () => undefined);
    });
    replica.on('stream', (stream, headers) => {
      stream.on('error', () => undefined);
      if (sessions > 1) {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '0' }, { endStream: true });
        return;
      }
      held.push(stream);
      if (headers[':path'] === '/svc/second') {
        // GOAWAY naming only the first call: the second was never processed.
        stream.session!.goaway(http2.constants.NGHTTP2_NO_ERROR, held[0]!.id!);
      }
    });
    await new Promise<void>((resolve) => replica.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => {
      replica.close();
      for (const s of held) s.session?.destroy();
    });
    const { address, pool, done } = await relay(`127.0.0.1:${(replica.address() as net.AddressInfo).port}`);
    const s = session(address);
    const first = call(s, '/svc/first');
    await until(() => held.length === 1);
    const second = call(s, '/svc/second');
    const r2 = await second;
    expect(r2.status).toBe('14');
    expect(r2.message).toMatch(/went away \(GOAWAY\) before taking the call/);
    // The first call is still served on the old connection.
    held[0]!.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    held[0]!.on('wantTrailers', () => held[0]!.sendTrailers({ 'grpc-status': '0' }));
    held[0]!.end(Buffer.from([0, 0, 0, 0, 0]));
    expect((await first).status).toBe('0');
    // A new call goes on a new connection.
    expect((await call(s, '/svc/third')).status).toBe('0');
    expect(sessions).toBe(2);
    expect(pool.counters.goawaysReceived).toBe(1);
    expect(pool.counters.streamsRefusedByGoaway).toBe(1);
    await until(() => done() === 3);
  }, 20_000);
});

describe('relay upstream: a replica that stops answering pings', () => {
  it('gives the connection up after keepaliveTimeoutMs and fails the call in flight with UNAVAILABLE naming it', async () => {
    // Handshakes, then reads and never answers anything: no PING ACK, no response.
    const sockets: net.Socket[] = [];
    const pings: number[] = [];
    const replica = net.createServer((socket) => {
      sockets.push(socket);
      socket.on('error', () => undefined);
      socket.write(settingsFrame([]));
      let buf = Buffer.alloc(0);
      let preface = false;
      socket.on('data', (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        if (!preface) {
          if (buf.length < CLIENT_PREFACE.length) return;
          buf = buf.subarray(CLIENT_PREFACE.length);
          preface = true;
        }
        while (buf.length >= 9 && buf.length >= 9 + buf.readUIntBE(0, 3)) {
          const len = buf.readUIntBE(0, 3);
          if (buf[3] === FrameType.SETTINGS && (buf[4]! & Flag.ACK) === 0) socket.write(SETTINGS_ACK_FRAME);
          if (buf[3] === FrameType.PING) pings.push(Date.now());
          buf = buf.subarray(9 + len);
        }
      });
    });
    await new Promise<void>((resolve) => replica.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => {
      for (const s of sockets) s.destroy();
      replica.close();
    });
    const { address } = await relay(`127.0.0.1:${(replica.address() as net.AddressInfo).port}`, { keepaliveTimeMs: 200, keepaliveTimeoutMs: 300 });
    const started = Date.now();
    const r = await call(session(address));
    expect(r.status).toBe('14');
    expect(r.message).toMatch(/did not answer a keepalive ping within 300 ms/);
    expect(pings.length).toBe(1);
    // One keepalive interval plus the timeout, with room for a loaded machine.
    expect(Date.now() - started).toBeLessThan(5000);
  }, 20_000);
});

describe('relay upstream: the deadline', () => {
  it('a call whose replica does not answer in time ends with DEADLINE_EXCEEDED, before and after the response started', async () => {
    const replica = http2.createServer();
    const held: http2.ServerHttp2Stream[] = [];
    replica.on('session', (s) => s.on('error', () => undefined));
    replica.on('stream', (stream, headers) => {
      stream.on('error', () => undefined);
      held.push(stream);
      // The second call gets its response headers and one message, then nothing.
      if (headers[':path'] === '/svc/started') {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
        stream.write(Buffer.from([0, 0, 0, 0, 0]));
      }
    });
    await new Promise<void>((resolve) => replica.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => {
      for (const s of held) s.session?.destroy();
      replica.close();
    });
    const { address, done } = await relay(`127.0.0.1:${(replica.address() as net.AddressInfo).port}`);
    const s = session(address);
    const [before, after] = await Promise.all([call(s, '/svc/silent', { 'grpc-timeout': '300m' }), call(s, '/svc/started', { 'grpc-timeout': '300m' })]);
    expect(before.status).toBe('4');
    expect(before.message).toMatch(/deadline of 300 ms exceeded while proxying/);
    expect(after.status).toBe('4');
    expect(after.message).toMatch(/deadline of 300 ms exceeded while proxying/);
    await until(() => done() === 2);
    // The replica saw both calls cancelled.
    await until(() => held.every((h) => h.rstCode === http2.constants.NGHTTP2_CANCEL));
  }, 20_000);
});

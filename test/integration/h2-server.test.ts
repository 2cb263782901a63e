/**
 * rebind's HTTP/2 server (src/h2) against real clients over loopback:
 * node:http2 (nghttp2) and grpc-js.
 */
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { createH2Server, ErrorCode, H2Connection, H2Counters, H2Headers, type H2Server, type H2ServerOptions, type H2Stream } from '../../src/h2/server.js';
import { makePki } from '../support/tls.js';

const servers: H2Server[] = [];
const sessions: http2.ClientHttp2Session[] = [];
afterEach(() => {
  for (const s of sessions.splice(0)) s.destroy();
  for (const s of servers.splice(0)) s.destroy();
});

async function start(onStream: (s: H2Stream) => void, opts: H2ServerOptions = {}): Promise<{ server: H2Server; url: string }> {
  const server = createH2Server(opts, onStream);
  servers.push(server);
  const addr = await server.listen(0);
  return { server, url: `http://127.0.0.1:${addr.port}` };
}

function connect(url: string, options?: http2.SecureClientSessionOptions): http2.ClientHttp2Session {
  const s = http2.connect(url, options);
  s.on('error', () => {});
  sessions.push(s);
  return s;
}

function request(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: Buffer): Promise<{ headers: http2.IncomingHttpHeaders; body: Buffer; trailers: http2.IncomingHttpHeaders | undefined; rstCode: number | undefined }> {
  return new Promise((resolve, reject) => {
    const req = session.request(headers, { endStream: body === undefined });
    let h: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders | undefined;
    const chunks: Buffer[] = [];
    req.on('response', (r) => (h = r));
    req.on('trailers', (t) => (trailers = t));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', () => {});
    req.on('close', () => resolve({ headers: h, body: Buffer.concat(chunks), trailers, rstCode: req.rstCode }));
    req.on('aborted', () => {});
    if (body !== undefined) req.end(body);
    void reject;
  });
}

describe('H2 server with a node:http2 client', () => {
  it('serves many requests on one connection (client HPACK uses Huffman and its dynamic table)', async () => {
    const { url } = await start((s) => {
      s.respond({ ':status': 200, 'x-path': s.path, 'x-custom': s.header('x-custom') ?? 'none', 'x-method': s.method });
      s.write(Buffer.from(`hello ${s.path}`));
      s.end();
    });
    const session = connect(url);
    const results = await Promise.all(
      Array.from({ length: 300 }, (_, i) => request(session, { ':path': `/svc/m${i % 7}`, ':method': 'POST', 'x-custom': 'some-repeated-header-value-for-the-dynamic-table', 'user-agent': 'test' }, Buffer.from('x'))),
    );
    for (let i = 0; i < results.length; i++) {
      const r = results[i]!;
      expect(r.headers[':status']).toBe(200);
      expect(r.headers['x-path']).toBe(`/svc/m${i % 7}`);
      expect(r.headers['x-custom']).toBe('some-repeated-header-value-for-the-dynamic-table');
      expect(r.headers['x-method']).toBe('POST');
      expect(r.body.toString()).toBe(`hello /svc/m${i % 7}`);
      expect(r.rstCode).toBe(0);
    }
  });

  it('moves > 1 MB each way under flow control (slow consumers on both sides)', async () => {
    const REQ = 3 * 1024 * 1024 + 17;
    const RES = 5 * 1024 * 1024 + 3;
    let received = 0;
    let sum = 0;
    const { url } = await start((s) => {
      s.read((chunk, end) => {
        received += chunk.length;
        for (let i = 0; i < chunk.length; i += 4096) sum = (sum + chunk[i]!) | 0;
        // Pause now and then so the client's window runs out.
        if (received % 7 === 0) {
          s.pause();
          setTimeout(() => s.resume(), 2);
        }
        if (!end) return;
        s.respond({ ':status': 200 });
        let sent = 0;
        const pump = (): void => {
          while (sent < RES) {
            const n = Math.min(65536, RES - sent);
            const c = Buffer.alloc(n, sent & 0xff);
            sent += n;
            if (!s.write(c)) {
              s.onDrain = pump;
              return;
            }
          }
          s.end({ 'x-received': String(received) });
        };
        pump();
      });
    });
    const session = connect(url);
    const body = Buffer.alloc(REQ, 3);
    const r = await new Promise<{ len: number; trailers: http2.IncomingHttpHeaders | undefined }>((resolve) => {
      const req = session.request({ ':path': '/big', ':method': 'POST' });
      let len = 0;
      let trailers: http2.IncomingHttpHeaders | undefined;
      req.on('data', (c: Buffer) => {
        len += c.length;
        req.pause();
        setTimeout(() => req.resume(), 1);
      });
      req.on('trailers', (t) => (trailers = t));
      req.on('close', () => resolve({ len, trailers }));
      req.end(body);
    });
    expect(received).toBe(REQ);
    expect(r.len).toBe(RES);
    expect(r.trailers?.['x-received']).toBe(String(REQ));
  });

  it('backs a slow reader with large windows up into the stream (write() false, onDrain), not into the output bound', async () => {
    const RES = 8 * 1024 * 1024;
    let drains = 0;
    const { server, url } = await start(
      (s) => {
        s.respond({ ':status': 200 });
        let sent = 0;
        const pump = (): void => {
          while (sent < RES) {
            sent += 65536;
            if (!s.write(Buffer.alloc(65536, 1))) {
              drains++;
              s.onDrain = pump;
              return;
            }
          }
          s.end({ 'grpc-status': '0' });
        };
        pump();
      },
      { maxQueuedOutputBytes: 256 * 1024 },
    );
    const session = connect(url, { settings: { initialWindowSize: 16 * 1024 * 1024 } } as http2.SecureClientSessionOptions);
    await new Promise<void>((r) => session.once('connect', () => r()));
    session.setLocalWindowSize(32 * 1024 * 1024);
    const len = await new Promise<number>((resolve) => {
      const req = session.request({ ':path': '/slow-reader', ':method': 'POST' });
      let n = 0;
      req.pause();
      setTimeout(() => req.resume(), 500);
      req.on('data', (c: Buffer) => (n += c.length));
      req.on('error', () => {});
      req.on('close', () => resolve(n));
      req.end();
    });
    expect(len).toBe(RES);
    expect(server.counters.outputOverflows).toBe(0);
    expect(drains).toBeGreaterThan(0);
  });

  it('pause() holds the request body at no more than the stream window until resume()', async () => {
    let stream!: H2Stream;
    let got = 0;
    let ended!: () => void;
    const done = new Promise<void>((r) => (ended = r));
    const { url } = await start(
      (s) => {
        stream = s;
        s.pause();
        s.read((chunk, end) => {
          got += chunk.length;
          if (end) {
            s.respond({ ':status': 200 }, { endStream: true });
            ended();
          }
        });
      },
      { initialWindowSizeBytes: 65535 },
    );
    const session = connect(url);
    const req = session.request({ ':path': '/paused', ':method': 'POST' });
    req.on('error', () => {});
    req.end(Buffer.alloc(1024 * 1024, 9));
    await new Promise((r) => setTimeout(r, 300));
    expect(got).toBe(0);
    expect(stream.bufferedInputBytes).toBeGreaterThan(0);
    expect(stream.bufferedInputBytes).toBeLessThanOrEqual(65535);
    stream.resume();
    await done;
    expect(got).toBe(1024 * 1024);
  });

  it('sends trailers after data, and Trailers-Only from a pre-encoded block reused on many streams', async () => {
    const forward = H2Headers.encode({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '5', 'grpc-message': 'moved' });
    const { url } = await start((s) => {
      if (s.path === '/bind') {
        s.respond(forward, { endStream: true });
        return;
      }
      s.respond({ ':status': 200, 'content-type': 'application/grpc' });
      s.write(Buffer.from([0, 0, 0, 0, 1, 42]));
      s.end({ 'grpc-status': '0', 'x-t': 'yes' });
    });
    const session = connect(url);
    const binds = await Promise.all(Array.from({ length: 20 }, () => request(session, { ':path': '/bind', ':method': 'POST' })));
    for (const b of binds) {
      // Trailers-Only: one HEADERS with END_STREAM (node reports it as the response headers).
      expect(b.headers['grpc-status']).toBe('5');
      expect(b.headers['grpc-message']).toBe('moved');
      expect(b.body.length).toBe(0);
    }
    const r = await request(session, { ':path': '/x', ':method': 'POST' });
    expect(r.body).toEqual(Buffer.from([0, 0, 0, 0, 1, 42]));
    expect(r.trailers?.['grpc-status']).toBe('0');
    expect(r.trailers?.['x-t']).toBe('yes');
  });

  it('reports a client RST_STREAM to the stream with its code', async () => {
    let closed: ((code: number) => void) | undefined;
    const code = new Promise<number>((r) => (closed = r));
    let opened!: () => void;
    const gotStream = new Promise<void>((r) => (opened = r));
    const { server, url } = await start((s) => {
      s.respond({ ':status': 200 });
      s.write(Buffer.from('partial'));
      s.onClose = (c) => closed!(c);
      opened();
    });
    const session = connect(url);
    const req = session.request({ ':path': '/slow', ':method': 'POST' });
    req.on('error', () => {});
    await gotStream;
    req.close(http2.constants.NGHTTP2_CANCEL);
    expect(await code).toBe(ErrorCode.CANCEL);
    await new Promise((r) => setTimeout(r, 50));
    expect(server.counters.resetsReceived).toBe(1);
    expect(server.stats().openStreams).toBe(0);
  });

  it('closes gracefully: GOAWAY NO_ERROR, the stream in progress completes, then the connection ends', async () => {
    let held: H2Stream | undefined;
    let opened!: () => void;
    const gotStream = new Promise<void>((r) => (opened = r));
    const { server, url } = await start((s) => {
      held = s;
      opened();
    });
    const session = connect(url);
    const goaway = new Promise<number>((r) => session.on('goaway', (code) => r(code)));
    const sessionClosed = new Promise<void>((r) => session.on('close', () => r()));
    const inFlight = request(session, { ':path': '/a', ':method': 'POST' }, Buffer.from('q'));
    await gotStream;
    const closing = server.close();
    expect(await goaway).toBe(0);
    held!.respond({ ':status': 200 });
    held!.write(Buffer.from('done'));
    held!.end({ 'grpc-status': '0' });
    const r = await inFlight;
    expect(r.body.toString()).toBe('done');
    expect(r.trailers?.['grpc-status']).toBe('0');
    await sessionClosed;
    await closing;
    expect(server.connections.size).toBe(0);
  });

  it('speaks h2 over TLS after ALPN', async () => {
    const pki = makePki();
    const { url } = await start(
      (s) => {
        s.respond({ ':status': 200, 'x-scheme': s.scheme }, { endStream: true });
      },
      { tls: { key: pki.serverKey, cert: pki.serverCert } },
    );
    const session = connect(url.replace('http:', 'https:'), { ca: pki.ca });
    const r = await request(session, { ':path': '/tls' });
    expect(r.headers[':status']).toBe(200);
    expect(r.headers['x-scheme']).toBe('https');
  });

  it('verifies client certificates (requestCert + rejectUnauthorized): a client without one gets no stream', async () => {
    const pki = makePki();
    let served = 0;
    const { url } = await start(
      (s) => {
        served++;
        s.respond({ ':status': 200 }, { endStream: true });
      },
      { tls: { key: pki.serverKey, cert: pki.serverCert, ca: pki.ca, requestCert: true, rejectUnauthorized: true } },
    );
    const https = url.replace('http:', 'https:');
    const withCert = connect(https, { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey });
    expect((await request(withCert, { ':path': '/mtls' })).headers[':status']).toBe(200);
    const without = connect(https, { ca: pki.ca });
    const failed = await new Promise<boolean>((resolve) => {
      without.on('error', () => resolve(true));
      without.on('close', () => resolve(true));
      const req = without.request({ ':path': '/mtls' });
      // TLS 1.3: the handshake completes on the client's side; the server's alert fails the request.
      req.on('error', () => resolve(true));
      req.on('response', () => resolve(false));
    });
    expect(failed).toBe(true);
    expect(served).toBe(1);
  });
});

describe('H2Connection started with bytes read elsewhere (initialData)', () => {
  it('serves a connection whose preface and first frames were read by the acceptor before it was handed over', async () => {
    const counters = new H2Counters();
    let firstChunkBytes = 0;
    const server = net.createServer((socket) => {
      // A router's view: take the first bytes off the socket, then hand socket + bytes over.
      socket.once('data', (first: Buffer) => {
        firstChunkBytes = first.length;
        socket.pause();
        const c = new H2Connection(
          socket,
          (s) => {
            s.respond({ ':status': 200, 'x-path': s.path }, { endStream: true });
          },
          {},
          counters,
          first,
        );
        void c;
        socket.resume();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const session = connect(`http://127.0.0.1:${(server.address() as net.AddressInfo).port}`);
      const r = await request(session, { ':path': '/first' });
      const r2 = await request(session, { ':path': '/second' });
      expect(firstChunkBytes).toBeGreaterThanOrEqual(24);
      expect(r.headers[':status']).toBe(200);
      expect(r.headers['x-path']).toBe('/first');
      expect(r2.headers['x-path']).toBe('/second');
      expect(counters.badPrefaces).toBe(0);
      expect(counters.streamsOpened).toBe(2);
    } finally {
      server.close();
    }
  });
});

describe('H2 server with a grpc-js client', () => {
  /** A tiny gRPC echo on H2Stream: 5-byte length-prefixed messages, grpc-status trailers. */
  function grpcEcho(s: H2Stream): void {
    if (s.header('content-type')?.startsWith('application/grpc') !== true) {
      s.respond({ ':status': 415 }, { endStream: true });
      return;
    }
    s.respond({ ':status': 200, 'content-type': 'application/grpc' });
    let buf = Buffer.alloc(0);
    s.read((chunk, end) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 5) {
        const len = buf.readUInt32BE(1);
        if (buf.length < 5 + len) break;
        const msg = buf.subarray(5, 5 + len);
        buf = buf.subarray(5 + len);
        const out = Buffer.alloc(5 + len);
        out.writeUInt32BE(len, 1);
        Buffer.from(msg.toString().toUpperCase()).copy(out, 5);
        s.write(out);
      }
      if (end) s.end({ 'grpc-status': '0' });
    });
  }

  const id = (b: Buffer): Buffer => b;

  it('a Trailers-Only answer sent on HEADERS, before the request body (the bind path), reaches grpc-js as that status', async () => {
    const moved = H2Headers.encode({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '14', 'grpc-message': 'forward to 10.0.0.7:50051' });
    const { server, url } = await start((s) => s.respond(moved, { endStream: true }));
    const client = new grpc.Client(url.replace('http://', ''), grpc.credentials.createInsecure());
    try {
      for (let i = 0; i < 20; i++) {
        const err = await new Promise<grpc.ServiceError | null>((resolve) =>
          client.makeUnaryRequest('/echo.Echo/Say', id, id, Buffer.alloc(1000, 1), (e) => resolve(e)),
        );
        expect(err?.code).toBe(grpc.status.UNAVAILABLE);
        expect(err?.details).toBe('forward to 10.0.0.7:50051');
      }
      expect(server.stats().openStreams).toBe(0);
      expect(server.counters.goawayByCode).toEqual({});
    } finally {
      client.close();
    }
  });

  it('answers unary and bidi-streaming calls, with keepalive pings on', async () => {
    const { server, url } = await start(grpcEcho);
    const client = new grpc.Client(url.replace('http://', ''), grpc.credentials.createInsecure(), {
      'grpc.keepalive_time_ms': 100,
      'grpc.keepalive_timeout_ms': 1000,
      'grpc.keepalive_permit_without_calls': 1,
    });
    try {
      const unary = await new Promise<Buffer>((resolve, reject) =>
        client.makeUnaryRequest('/echo.Echo/Say', id, id, Buffer.from('hello'), (err, res) => (err ? reject(err) : resolve(res!))),
      );
      expect(unary.toString()).toBe('HELLO');

      const call = client.makeBidiStreamRequest('/echo.Echo/Chat', id, id);
      const got: string[] = [];
      const done = new Promise<void>((resolve, reject) => {
        call.on('data', (b: Buffer) => got.push(b.toString()));
        call.on('status', (st: grpc.StatusObject) => (st.code === 0 ? resolve() : reject(new Error(st.details))));
        call.on('error', reject);
      });
      for (let i = 0; i < 50; i++) call.write(Buffer.from(`m${i}`));
      // Let keepalive pings flow while the call is open.
      await new Promise((r) => setTimeout(r, 400));
      call.end();
      await done;
      expect(got).toEqual(Array.from({ length: 50 }, (_, i) => `M${i}`));
      expect(server.counters.pingsReceived).toBeGreaterThan(0);
      expect(server.counters.goawayByCode).toEqual({});
    } finally {
      client.close();
    }
  });
});

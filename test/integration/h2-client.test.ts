/**
 * rebind's HTTP/2 client (src/h2/client.ts) against real servers over
 * loopback: node:http2 (nghttp2) for the protocol, and a raw TCP server
 * reading and writing frames for what a conforming server never does.
 */
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { connectH2, ErrorCode, H2ClientCounters, HpackEncoder, type H2ClientConnection, type H2ClientStream } from '../../src/h2/index.js';
import { CLIENT_PREFACE, Flag, frame, FrameType, goawayFrame, settingsFrame, SettingId, SETTINGS_ACK_FRAME } from '../../src/h2/frames.js';

const cleanups: (() => unknown)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

const REQUEST = HpackEncoder.encode({ ':method': 'POST', ':scheme': 'http', ':authority': 'test', ':path': '/svc/M', 'content-type': 'application/grpc', te: 'trailers' });

async function nodeServer(onStream: (s: http2.ServerHttp2Stream, h: http2.IncomingHttpHeaders) => void, settings?: http2.Settings): Promise<{ address: string; server: http2.Http2Server }> {
  const server = http2.createServer(settings !== undefined ? { settings } : {});
  server.on('stream', (s: http2.ServerHttp2Stream, h: http2.IncomingHttpHeaders) => {
    s.on('error', () => undefined);
    onStream(s, h);
  });
  server.on('sessionError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => server.close());
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('error', () => undefined);
  });
  cleanups.push(() => {
    for (const s of sessions) s.destroy();
  });
  return { address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`, server };
}

function client(address: string, options: Parameters<typeof connectH2>[1] = {}, counters?: H2ClientCounters): H2ClientConnection {
  const c = connectH2(address, options, counters);
  cleanups.push(() => c.destroy());
  return c;
}

interface Result {
  status: number;
  headers: string[];
  body: Buffer;
  trailers: string[] | null;
  rstCode: number;
  refused: boolean;
}

/** Collects a stream's response; resolves on close. */
function collect(s: H2ClientStream): Promise<Result> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let headers: string[] = [];
    let trailers: string[] | null = null;
    s.onResponse = (h) => (headers = h);
    s.onTrailers = (t) => (trailers = t);
    s.read((c) => {
      if (c.length > 0) chunks.push(Buffer.from(c));
    });
    s.onClose = function (code) {
      resolve({ status: this.status, headers, body: Buffer.concat(chunks), trailers, rstCode: code, refused: this.refused });
    };
  });
}

/** A raw TCP "server": hands each parsed frame to `onFrame`, lets the test write frames. */
async function rawServer(onFrame: (f: { type: number; flags: number; stream: number; payload: Buffer }, socket: net.Socket) => void): Promise<{ address: string; sockets: net.Socket[] }> {
  const sockets: net.Socket[] = [];
  const server = net.createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => undefined);
    let buf = Buffer.alloc(0);
    let prefaceSeen = false;
    socket.write(settingsFrame([]));
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (!prefaceSeen) {
        if (buf.length < CLIENT_PREFACE.length) return;
        expect(buf.subarray(0, CLIENT_PREFACE.length).equals(CLIENT_PREFACE)).toBe(true);
        buf = buf.subarray(CLIENT_PREFACE.length);
        prefaceSeen = true;
      }
      while (buf.length >= 9) {
        const len = buf.readUIntBE(0, 3);
        if (buf.length < 9 + len) break;
        const f = { type: buf[3]!, flags: buf[4]!, stream: buf.readUInt32BE(5) & 0x7fffffff, payload: Buffer.from(buf.subarray(9, 9 + len)) };
        buf = buf.subarray(9 + len);
        if (f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) === 0) socket.write(SETTINGS_ACK_FRAME);
        onFrame(f, socket);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return { address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`, sockets };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(5);
  }
}

describe('H2 client: what goes on the wire', () => {
  it('a unary request is HEADERS + one DATA frame with END_STREAM, also when end() follows write() in the same turn', async () => {
    const seen: { type: number; flags: number; stream: number; length: number }[] = [];
    const { address } = await rawServer((f) => {
      if (f.type === FrameType.HEADERS || f.type === FrameType.DATA) seen.push({ type: f.type, flags: f.flags, stream: f.stream, length: f.payload.length });
    });
    const c = client(address);
    const a = c.request(REQUEST)!;
    a.end(Buffer.alloc(20, 1));
    const b = c.request(REQUEST)!;
    b.write(Buffer.alloc(30, 2));
    b.end();
    await until(() => seen.length >= 4);
    await sleep(50);
    expect(seen).toEqual([
      { type: FrameType.HEADERS, flags: Flag.END_HEADERS, stream: 1, length: REQUEST.length },
      { type: FrameType.DATA, flags: Flag.END_STREAM, stream: 1, length: 20 },
      { type: FrameType.HEADERS, flags: Flag.END_HEADERS, stream: 3, length: REQUEST.length },
      { type: FrameType.DATA, flags: Flag.END_STREAM, stream: 3, length: 30 },
    ]);
  });
});

describe('H2 client with a node:http2 server', () => {
  it('unary calls: response headers, body and trailers decoded (server HPACK with Huffman and its dynamic table)', async () => {
    const { address } = await nodeServer((s, h) => {
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => chunks.push(c));
      s.on('end', () => {
        s.respond({ ':status': 200, 'content-type': 'application/grpc', 'x-path': String(h[':path']) }, { waitForTrailers: true });
        s.on('wantTrailers', () => s.sendTrailers({ 'grpc-status': '0', 'x-len': String(Buffer.concat(chunks).length) }));
        s.end(Buffer.concat(chunks));
      });
    });
    const c = client(address);
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => {
        const s = c.request(REQUEST)!;
        const r = collect(s);
        s.end(Buffer.alloc(i + 1, i));
        return r;
      }),
    );
    for (let i = 0; i < results.length; i++) {
      const r = results[i]!;
      expect(r.status).toBe(200);
      expect(r.headers.slice(0, 2)).toEqual([':status', '200']);
      expect(r.headers).toContain('/svc/M');
      expect(r.body.equals(Buffer.alloc(i + 1, i))).toBe(true);
      expect(r.trailers).toEqual(['grpc-status', '0', 'x-len', String(i + 1)]);
      expect(r.rstCode).toBe(ErrorCode.NO_ERROR);
    }
    expect(c.openStreams).toBe(0);
  });

  it('request flow control: a 1 MiB request to a server with a 16 KiB window arrives whole; write() reports backpressure and onDrain follows', async () => {
    const { address } = await nodeServer(
      (s) => {
        let n = 0;
        s.on('data', (c: Buffer) => (n += c.length));
        s.on('end', () => {
          s.respond({ ':status': 200 }, { waitForTrailers: true });
          s.on('wantTrailers', () => s.sendTrailers({ 'x-bytes': String(n) }));
          s.end();
        });
      },
      { initialWindowSize: 16 * 1024 },
    );
    const c = client(address, { streamHighWaterMarkBytes: 64 * 1024 });
    await until(() => c.ready);
    const s = c.request(REQUEST)!;
    const done = collect(s);
    let drains = 0;
    let sent = 0;
    const chunk = Buffer.alloc(32 * 1024, 7);
    await new Promise<void>((resolve) => {
      const pump = (): void => {
        while (sent < 1024 * 1024) {
          sent += chunk.length;
          if (sent >= 1024 * 1024) {
            s.end(chunk);
            resolve();
            return;
          }
          if (!s.write(chunk)) return;
        }
      };
      s.onDrain = () => {
        drains++;
        pump();
      };
      pump();
    });
    const r = await done;
    expect(drains).toBeGreaterThan(0);
    expect(r.trailers).toEqual(['x-bytes', String(1024 * 1024)]);
  });

  it('response flow control: a paused stream holds at most its window; resume() delivers the rest', async () => {
    const { address } = await nodeServer((s) => {
      s.respond({ ':status': 200 });
      s.end(Buffer.alloc(1024 * 1024, 3));
    });
    const c = client(address, { initialWindowSizeBytes: 32 * 1024 });
    const s = c.request(REQUEST)!;
    s.pause();
    const done = collect(s);
    s.pause();
    s.end();
    await until(() => s.bufferedInputBytes > 0);
    await sleep(200);
    expect(s.bufferedInputBytes).toBe(32 * 1024);
    s.resume();
    const r = await done;
    expect(r.body.length).toBe(1024 * 1024);
  });

  it('answers the server\'s PING and gets its own PING answered', async () => {
    let session: http2.ServerHttp2Session | null = null;
    const { address, server } = await nodeServer(() => undefined);
    server.on('session', (s) => (session = s));
    const c = client(address);
    await until(() => c.ready && session !== null);
    // Rejects (ERR_HTTP2_PING_CANCEL) if the connection goes unanswered.
    await new Promise<void>((resolve, reject) => session!.ping((err) => (err ? reject(err) : resolve())));
    const counters = c.counters;
    expect(counters.pingsReceived).toBe(1);
    expect(await new Promise<boolean>((resolve) => c.ping(resolve))).toBe(true);
  });

  it('close(): GOAWAY to the server, no new stream, the stream in flight finishes, then the connection ends cleanly', async () => {
    const held: http2.ServerHttp2Stream[] = [];
    let goaway = false;
    const { address, server } = await nodeServer((s) => held.push(s));
    server.on('session', (session) => session.on('goaway', () => (goaway = true)));
    const c = client(address);
    const s = c.request(REQUEST)!;
    const r = collect(s);
    s.end(Buffer.from('x'));
    await until(() => held.length === 1);
    c.close();
    expect(c.canOpen).toBe(false);
    expect(c.request(REQUEST)).toBeNull();
    await until(() => goaway);
    const closed = new Promise<Error | null>((resolve) => (c.onClose = resolve));
    held[0]!.respond({ ':status': 200 }, { endStream: true });
    expect((await r).status).toBe(200);
    expect(await closed).toBeNull();
  });

  it("respects the server's MAX_CONCURRENT_STREAMS", async () => {
    const { address } = await nodeServer(() => undefined, { maxConcurrentStreams: 2 });
    const c = client(address);
    await until(() => c.ready);
    expect(c.request(REQUEST)).not.toBeNull();
    expect(c.request(REQUEST)).not.toBeNull();
    expect(c.canOpen).toBe(false);
    expect(c.request(REQUEST)).toBeNull();
  });

  it("a server's RST_STREAM closes the stream with its code", async () => {
    const { address } = await nodeServer((s) => s.close(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM));
    const c = client(address);
    const s = c.request(REQUEST)!;
    const r = collect(s);
    s.end(Buffer.from('x'));
    expect((await r).rstCode).toBe(ErrorCode.ENHANCE_YOUR_CALM);
    expect(c.counters.resetsReceived).toBe(1);
  });

  it('over TLS with ALPN h2, verifying the server against a CA', async () => {
    const { makePki } = await import('../support/tls.js');
    const pki = makePki();
    const server = http2.createSecureServer({ cert: pki.serverCert, key: pki.serverKey });
    server.on('stream', (s) => {
      s.respond({ ':status': 200 }, { endStream: true });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => server.close());
    const address = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    const c = client(address, { tls: { ca: pki.ca } });
    const s = c.request(REQUEST, true)!;
    expect((await collect(s)).status).toBe(200);
    // A client that does not trust the server's CA never gets a connection.
    const untrusted = client(address, { tls: { ca: makePki().ca } });
    await new Promise<void>((resolve) => (untrusted.onClose = () => resolve()));
    expect(untrusted.error?.message).toMatch(/certificate|self.signed|verify/i);
  });
});

describe('H2 client: GOAWAY and hostile servers', () => {
  it("a server's GOAWAY fails the streams above its last-stream-id as refused, lets the others finish, and opens no new stream", async () => {
    const { address, sockets } = await rawServer(() => undefined);
    const c = client(address);
    let goaway: [number, number] | null = null;
    c.onGoaway = (last, code) => (goaway = [last, code]);
    const streams = [c.request(REQUEST)!, c.request(REQUEST)!, c.request(REQUEST)!];
    const results = streams.map(collect);
    for (const s of streams) s.end(Buffer.from('x'));
    await until(() => sockets.length === 1 && c.ready);
    await sleep(50);
    sockets[0]!.write(goawayFrame(1, ErrorCode.NO_ERROR));
    await until(() => goaway !== null);
    expect(goaway).toEqual([1, ErrorCode.NO_ERROR]);
    expect(c.canOpen).toBe(false);
    expect(c.request(REQUEST)).toBeNull();
    const [r3, r5] = await Promise.all([results[1]!, results[2]!]);
    expect([r3.refused, r3.rstCode, r5.refused, r5.rstCode]).toEqual([true, ErrorCode.REFUSED_STREAM, true, ErrorCode.REFUSED_STREAM]);
    expect(c.counters.streamsRefusedByGoaway).toBe(2);
    // Stream 1 is still served.
    sockets[0]!.write(frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 1, HpackEncoder.encode({ ':status': 200, 'grpc-status': '0' })));
    const r1 = await results[0]!;
    expect([r1.status, r1.refused, r1.rstCode]).toEqual([200, false, ErrorCode.NO_ERROR]);
  });

  it('a CONTINUATION flood is a connection error (GOAWAY ENHANCE_YOUR_CALM), counted', async () => {
    const received: number[] = [];
    const { address, sockets } = await rawServer((f) => {
      if (f.type === FrameType.GOAWAY) received.push(f.payload.readUInt32BE(4));
    });
    const c = client(address);
    const s = c.request(REQUEST)!;
    const r = collect(s);
    s.end(Buffer.from('x'));
    await until(() => sockets.length === 1 && c.ready);
    const block = HpackEncoder.encode({ ':status': 200 });
    sockets[0]!.write(frame(FrameType.HEADERS, 0, 1, block));
    for (let i = 0; i < 40; i++) sockets[0]!.write(frame(FrameType.CONTINUATION, 0, 1, Buffer.alloc(100, 0x40)));
    await r;
    await until(() => received.length > 0);
    expect(received).toEqual([ErrorCode.ENHANCE_YOUR_CALM]);
    expect(c.counters.continuationFloods).toBe(1);
    expect(c.error?.message).toMatch(/CONTINUATION/);
  });

  it('a response header list above maxHeaderListSizeBytes resets that stream only, counted', async () => {
    const rst: [number, number][] = [];
    const { address, sockets } = await rawServer((f) => {
      if (f.type === FrameType.RST_STREAM) rst.push([f.stream, f.payload.readUInt32BE(0)]);
    });
    const c = client(address, { maxHeaderListSizeBytes: 1024 });
    const a = c.request(REQUEST)!;
    const b = c.request(REQUEST)!;
    const ra = collect(a);
    const rb = collect(b);
    a.end(Buffer.from('x'));
    b.end(Buffer.from('x'));
    await until(() => sockets.length === 1 && c.ready);
    sockets[0]!.write(frame(FrameType.HEADERS, Flag.END_HEADERS, 1, HpackEncoder.encode({ ':status': 200, 'x-big': 'v'.repeat(4000) })));
    sockets[0]!.write(frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 3, HpackEncoder.encode({ ':status': 200, 'grpc-status': '0' })));
    const [xa, xb] = await Promise.all([ra, rb]);
    expect(xa.rstCode).toBe(ErrorCode.PROTOCOL_ERROR);
    expect(a.localError).toMatch(/header list above 1024 bytes/);
    expect(xb.status).toBe(200);
    expect(c.counters.headerListTooLarge).toBe(1);
    await until(() => rst.length > 0);
    expect(rst).toEqual([[1, ErrorCode.PROTOCOL_ERROR]]);
  });

  it('response headers or trailers with a CR LF in a value, an upper-case name or a connection header reset their stream as malformed, counted', async () => {
    const { address, sockets } = await rawServer(() => undefined);
    const c = client(address);
    const streams = [c.request(REQUEST)!, c.request(REQUEST)!, c.request(REQUEST)!, c.request(REQUEST)!];
    const results = streams.map(collect);
    for (const s of streams) s.end(Buffer.from('x'));
    await until(() => sockets.length === 1 && c.ready);
    // HpackEncoder lower-cases names; a literal name is written by hand for the upper-case one.
    const upper = Buffer.concat([HpackEncoder.encode({ ':status': 200 }), Buffer.from([0x00, 5]), Buffer.from('X-Bad'), Buffer.from([1]), Buffer.from('v')]);
    sockets[0]!.write(frame(FrameType.HEADERS, Flag.END_HEADERS, 1, HpackEncoder.encode({ ':status': 200, 'x-evil': 'a\r\nset-cookie: b' })));
    sockets[0]!.write(frame(FrameType.HEADERS, Flag.END_HEADERS, 3, upper));
    sockets[0]!.write(frame(FrameType.HEADERS, Flag.END_HEADERS, 5, HpackEncoder.encode({ ':status': 200, connection: 'close' })));
    sockets[0]!.write(frame(FrameType.HEADERS, Flag.END_HEADERS, 7, HpackEncoder.encode({ ':status': 200 })));
    sockets[0]!.write(frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 7, HpackEncoder.encode({ 'grpc-status': '0', 'x-t': 'a\nb' })));
    const rs = await Promise.all(results);
    expect(rs.map((r) => r.rstCode)).toEqual([ErrorCode.PROTOCOL_ERROR, ErrorCode.PROTOCOL_ERROR, ErrorCode.PROTOCOL_ERROR, ErrorCode.PROTOCOL_ERROR]);
    expect(streams.map((s) => s.localError)).toEqual(['malformed response headers', 'malformed response headers', 'malformed response headers', 'malformed trailers']);
    expect(c.counters.malformedResponses).toBe(4);
  });

  it('a server that does not read: queued output beyond maxQueuedOutputBytes destroys the connection, counted', async () => {
    const { address, sockets } = await rawServer(() => undefined);
    const c = client(address, { maxQueuedOutputBytes: 64 * 1024 });
    await until(() => sockets.length === 1 && c.ready);
    sockets[0]!.pause();
    // PINGs (8 bytes + header each) pile up behind a server that stopped reading.
    const ping = frame(FrameType.PING, 0, 0, Buffer.alloc(8));
    for (let i = 0; i < 200_000 && !c.destroyed; i++) sockets[0]!.write(ping);
    await until(() => c.destroyed, 10_000);
    expect(c.counters.outputOverflows).toBe(1);
  }, 20_000);

  it('a server that sends SETTINGS MAX_CONCURRENT_STREAMS 0 gets no stream', async () => {
    const { address, sockets } = await rawServer(() => undefined);
    const c = client(address);
    await until(() => sockets.length === 1 && c.ready);
    sockets[0]!.write(settingsFrame([[SettingId.MAX_CONCURRENT_STREAMS, 0]]));
    await until(() => c.peerMaxStreams === 0);
    expect(c.request(REQUEST)).toBeNull();
  });
});

/**
 * Hostile peers against rebind's HTTP/2 server (src/h2): raw sockets writing
 * hand-built frames. Each case checks the GOAWAY / RST code, the counter, and
 * that the server still serves another connection.
 */
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { CLIENT_PREFACE, ErrorCode, Flag, frame, FrameReader, FrameType, rstStreamFrame, settingsFrame, SettingId, windowUpdateFrame, type FrameSink } from '../../src/h2/frames.js';
import { HpackEncoder } from '../../src/h2/hpack.js';
import { createH2Server, type H2Server, type H2ServerOptions, type H2Stream } from '../../src/h2/server.js';

interface Frame {
  type: number;
  flags: number;
  sid: number;
  payload: Buffer;
}

class RawClient implements FrameSink {
  readonly frames: Frame[] = [];
  private readonly reader = new FrameReader(this, 1 << 24);
  private waiters: (() => void)[] = [];
  closed = false;
  readonly closedP: Promise<void>;

  constructor(readonly sock: net.Socket) {
    sock.on('data', (c: Buffer) => {
      this.reader.push(c);
      this.wake();
    });
    sock.on('error', () => {});
    this.closedP = new Promise((r) =>
      sock.on('close', () => {
        this.closed = true;
        this.wake();
        r();
      }),
    );
  }

  static async open(port: number, preface = true): Promise<RawClient> {
    const sock = net.connect(port, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    const c = new RawClient(sock);
    if (preface) c.send(CLIENT_PREFACE, settingsFrame([]));
    return c;
  }

  onFrame(type: number, flags: number, sid: number, payload: Buffer): void {
    this.frames.push({ type, flags, sid, payload: Buffer.from(payload) });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  send(...bufs: Buffer[]): void {
    this.sock.write(Buffer.concat(bufs));
  }

  async waitFor(pred: (f: Frame) => boolean, timeoutMs = 10_000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const f = this.frames.find(pred);
      if (f !== undefined) return f;
      if (this.closed || Date.now() > deadline) throw new Error(`frame not seen (closed=${this.closed}); got ${this.frames.map((x) => x.type).join(',')}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
  }

  async goawayCode(): Promise<number> {
    const f = await this.waitFor((x) => x.type === FrameType.GOAWAY);
    return f.payload.readUInt32BE(4);
  }

  async rstCode(sid: number): Promise<number> {
    const f = await this.waitFor((x) => x.type === FrameType.RST_STREAM && x.sid === sid);
    return f.payload.readUInt32BE(0);
  }
}

const REQUEST = (path = '/x'): Buffer =>
  HpackEncoder.encode([
    [':method', 'POST'],
    [':scheme', 'http'],
    [':path', path],
    [':authority', 'a'],
    ['content-type', 'application/grpc'],
  ]);
const headers = (sid: number, block: Buffer, flags = Flag.END_HEADERS | Flag.END_STREAM): Buffer => frame(FrameType.HEADERS, flags, sid, block);

const servers: H2Server[] = [];
const clients: RawClient[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.sock.destroy();
  for (const s of servers.splice(0)) s.destroy();
});

/** Holds streams on /hold; answers others Trailers-Only. */
async function start(opts: H2ServerOptions = {}, onStream?: (s: H2Stream) => void): Promise<{ server: H2Server; port: number; held: H2Stream[] }> {
  const held: H2Stream[] = [];
  const server = createH2Server(
    opts,
    onStream ??
      ((s) => {
        if (s.path === '/hold') held.push(s);
        else s.respond({ ':status': 200, 'grpc-status': '0' }, { endStream: true });
      }),
  );
  servers.push(server);
  const { port } = await server.listen(0);
  return { server, port, held };
}

async function open(port: number, preface = true): Promise<RawClient> {
  const c = await RawClient.open(port, preface);
  clients.push(c);
  return c;
}

/** A fresh node:http2 client still gets an answer. */
async function stillServes(port: number): Promise<void> {
  const s = http2.connect(`http://127.0.0.1:${port}`);
  s.on('error', () => {});
  try {
    const status = await new Promise<number | undefined>((resolve) => {
      const req = s.request({ ':path': '/ok', ':method': 'POST' });
      req.on('response', (h) => resolve(h[':status'] as number));
      req.on('error', () => resolve(undefined));
      req.end();
    });
    expect(status).toBe(200);
  } finally {
    s.destroy();
  }
}

describe('H2 server against hostile peers', () => {
  it('closes a connection with a bad preface', async () => {
    const { server, port } = await start();
    const c = await open(port, false);
    c.send(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    await c.closedP;
    expect(server.counters.badPrefaces).toBe(1);
    await stillServes(port);
  });

  it('GOAWAY PROTOCOL_ERROR when the first frame is not SETTINGS', async () => {
    const { port } = await start();
    const c = await open(port, false);
    c.send(CLIENT_PREFACE, frame(FrameType.PING, 0, 0, Buffer.alloc(8)));
    expect(await c.goawayCode()).toBe(ErrorCode.PROTOCOL_ERROR);
  });

  it('GOAWAY FRAME_SIZE_ERROR for a frame above our max frame size', async () => {
    const { server, port } = await start();
    const c = await open(port);
    c.send(headers(1, REQUEST('/hold'), Flag.END_HEADERS), frame(FrameType.DATA, 0, 1, Buffer.alloc(16385)));
    expect(await c.goawayCode()).toBe(ErrorCode.FRAME_SIZE_ERROR);
    expect(server.counters.goawayByCode[ErrorCode.FRAME_SIZE_ERROR]).toBe(1);
    await stillServes(port);
  });

  it('GOAWAY PROTOCOL_ERROR for an even stream id', async () => {
    const { port } = await start();
    const c = await open(port);
    c.send(headers(2, REQUEST()));
    expect(await c.goawayCode()).toBe(ErrorCode.PROTOCOL_ERROR);
    await stillServes(port);
  });

  it('GOAWAY PROTOCOL_ERROR for a decreasing stream id', async () => {
    const { port } = await start();
    const c = await open(port);
    c.send(headers(5, REQUEST()));
    await c.waitFor((f) => f.type === FrameType.HEADERS && f.sid === 5);
    c.send(headers(3, REQUEST(), Flag.END_HEADERS));
    expect(await c.goawayCode()).toBe(ErrorCode.PROTOCOL_ERROR);
    // The GOAWAY names the last stream we processed.
    const g = await c.waitFor((f) => f.type === FrameType.GOAWAY);
    expect(g.payload.readUInt32BE(0)).toBe(5);
  });

  it('GOAWAY COMPRESSION_ERROR for a malformed header block', async () => {
    const { port } = await start();
    const c = await open(port);
    c.send(headers(1, Buffer.from([0x80])));
    expect(await c.goawayCode()).toBe(ErrorCode.COMPRESSION_ERROR);
  });

  it('refuses an HPACK bomb beyond the header list size (RST ENHANCE_YOUR_CALM) and keeps the connection in sync', async () => {
    const { server, port } = await start();
    const c = await open(port);
    // Insert a 4000-byte value (literal with incremental indexing, new name "x"), then reference it 200 times.
    const v = Buffer.alloc(4000, 0x61);
    const insert = Buffer.concat([Buffer.from([0x40, 0x01, 0x78, 0x7f, (4000 - 127) % 128 | 0x80, Math.floor((4000 - 127) / 128)]), v]);
    const bomb = Buffer.concat([REQUEST(), insert, Buffer.alloc(200, 0x80 | 62)]);
    c.send(headers(1, bomb));
    expect(await c.rstCode(1)).toBe(ErrorCode.ENHANCE_YOUR_CALM);
    expect(server.counters.headerListTooLarge).toBe(1);
    // The table is in sync: a request referencing the inserted entry once is served.
    c.send(headers(3, Buffer.concat([REQUEST(), Buffer.from([0x80 | 62])])));
    const h = await c.waitFor((f) => f.type === FrameType.HEADERS && f.sid === 3);
    expect(h.flags & Flag.END_STREAM).toBe(Flag.END_STREAM);
    expect(server.counters.goawayByCode).toEqual({});
  });

  it('GOAWAY ENHANCE_YOUR_CALM for a CONTINUATION flood', async () => {
    const { server, port } = await start({ maxContinuationFrames: 8 });
    const c = await open(port);
    const block = REQUEST();
    const frames = [frame(FrameType.HEADERS, Flag.END_STREAM, 1, block.subarray(0, 2))];
    for (let i = 0; i < 50; i++) frames.push(frame(FrameType.CONTINUATION, 0, 1, Buffer.from([0x00])));
    c.send(...frames);
    expect(await c.goawayCode()).toBe(ErrorCode.ENHANCE_YOUR_CALM);
    expect(server.counters.continuationFloods).toBe(1);
    await stillServes(port);
  });

  it('GOAWAY ENHANCE_YOUR_CALM for rapid reset (CVE-2023-44487)', async () => {
    const { server, port } = await start({ maxResetsPerWindow: 50, abuseWindowMs: 60_000 });
    const c = await open(port);
    const frames: Buffer[] = [];
    for (let i = 0; i < 100; i++) {
      const sid = 1 + 2 * i;
      frames.push(headers(sid, REQUEST('/hold'), Flag.END_HEADERS), rstStreamFrame(sid, ErrorCode.CANCEL));
    }
    c.send(...frames);
    expect(await c.goawayCode()).toBe(ErrorCode.ENHANCE_YOUR_CALM);
    expect(server.counters.rapidResets).toBe(1);
    expect(server.counters.resetsReceived).toBe(51);
    await stillServes(port);
  });

  it('counts stream errors the peer provokes with its resets ("MadeYouReset"): GOAWAY ENHANCE_YOUR_CALM', async () => {
    const { server, port } = await start({ maxResetsPerWindow: 50, abuseWindowMs: 60_000 });
    const c = await open(port);
    const frames: Buffer[] = [];
    for (let i = 0; i < 100; i++) {
      const sid = 1 + 2 * i;
      // A WINDOW_UPDATE of 0 on an open stream: we must reset it (stream PROTOCOL_ERROR).
      frames.push(headers(sid, REQUEST('/hold'), Flag.END_HEADERS), windowUpdateFrame(sid, 0));
    }
    c.send(...frames);
    expect(await c.goawayCode()).toBe(ErrorCode.ENHANCE_YOUR_CALM);
    expect(server.counters.rapidResets).toBe(1);
    expect(server.counters.resetsReceived).toBe(0);
    expect(c.frames.filter((f) => f.type === FrameType.RST_STREAM && f.payload.readUInt32BE(0) === ErrorCode.PROTOCOL_ERROR).length).toBe(50);
    await stillServes(port);
  });

  it('GOAWAY ENHANCE_YOUR_CALM for a flood of empty DATA frames', async () => {
    const { server, port } = await start({ maxEmptyFramesPerWindow: 100, abuseWindowMs: 60_000 });
    const c = await open(port);
    const frames = [headers(1, REQUEST('/hold'), Flag.END_HEADERS)];
    for (let i = 0; i < 200; i++) frames.push(frame(FrameType.DATA, 0, 1));
    c.send(...frames);
    expect(await c.goawayCode()).toBe(ErrorCode.ENHANCE_YOUR_CALM);
    expect(server.counters.emptyFrameFloods).toBe(1);
  });

  it('destroys a connection that floods PINGs while not reading (queued output bound)', async () => {
    const { server, port } = await start({ maxQueuedOutputBytes: 64 * 1024 });
    const c = await open(port);
    c.sock.pause();
    const ping = frame(FrameType.PING, 0, 0, Buffer.alloc(8));
    const batch = Buffer.concat(Array.from({ length: 2000 }, () => ping));
    // Up to 100 MB of PINGs (3.4 M acks to queue): far beyond any socket buffer.
    for (let i = 0; i < 3000 && !c.closed; i++) {
      if (!c.sock.write(batch)) await new Promise((r) => { c.sock.once('drain', r); c.sock.once('close', r); });
    }
    await c.closedP;
    expect(server.counters.outputOverflows).toBe(1);
    await stillServes(port);
  }, 60_000);

  it('GOAWAY FLOW_CONTROL_ERROR for a connection WINDOW_UPDATE overflow; RST for a stream one', async () => {
    const { port } = await start();
    const c = await open(port);
    c.send(headers(1, REQUEST('/hold'), Flag.END_HEADERS), windowUpdateFrame(1, 0x7fffffff));
    expect(await c.rstCode(1)).toBe(ErrorCode.FLOW_CONTROL_ERROR);
    c.send(windowUpdateFrame(0, 0x7fffffff));
    expect(await c.goawayCode()).toBe(ErrorCode.FLOW_CONTROL_ERROR);
  });

  it('RST_STREAM FLOW_CONTROL_ERROR for DATA beyond the stream window', async () => {
    const { port } = await start({ initialWindowSizeBytes: 65535, connectionWindowSizeBytes: 1 << 20 });
    const c = await open(port);
    const chunk = frame(FrameType.DATA, 0, 1, Buffer.alloc(16384));
    // 5 x 16384 > 65535 (nothing is read: the handler holds the stream without read()).
    c.send(headers(1, REQUEST('/hold'), Flag.END_HEADERS), chunk, chunk, chunk, chunk, chunk);
    expect(await c.rstCode(1)).toBe(ErrorCode.FLOW_CONTROL_ERROR);
    await stillServes(port);
  });

  it('GOAWAY FLOW_CONTROL_ERROR for DATA beyond the connection window', async () => {
    const { port } = await start({ initialWindowSizeBytes: 1 << 20, connectionWindowSizeBytes: 65535 });
    const c = await open(port);
    const chunk = frame(FrameType.DATA, 0, 1, Buffer.alloc(16384));
    c.send(headers(1, REQUEST('/hold'), Flag.END_HEADERS), chunk, chunk, chunk, chunk, chunk);
    expect(await c.goawayCode()).toBe(ErrorCode.FLOW_CONTROL_ERROR);
  });

  it('refuses streams above MAX_CONCURRENT_STREAMS with RST_STREAM REFUSED_STREAM', async () => {
    const { server, port, held } = await start({ maxConcurrentStreams: 2 });
    const c = await open(port);
    c.send(headers(1, REQUEST('/hold')), headers(3, REQUEST('/hold')), headers(5, REQUEST('/hold')));
    expect(await c.rstCode(5)).toBe(ErrorCode.REFUSED_STREAM);
    expect(server.counters.streamsRefused).toBe(1);
    expect(held.map((s) => s.id)).toEqual([1, 3]);
    // A slot frees: the next stream is accepted.
    held[0]!.respond({ ':status': 200 }, { endStream: true });
    c.send(headers(7, REQUEST()));
    await c.waitFor((f) => f.type === FrameType.HEADERS && f.sid === 7);
  });

  it('GOAWAY ENHANCE_YOUR_CALM for a client that keeps opening streams above MAX_CONCURRENT_STREAMS', async () => {
    const { server, port } = await start({ maxConcurrentStreams: 1, maxResetsPerWindow: 20, abuseWindowMs: 60_000 });
    const c = await open(port);
    c.send(...Array.from({ length: 50 }, (_, i) => headers(1 + 2 * i, REQUEST('/hold'))));
    expect(await c.goawayCode()).toBe(ErrorCode.ENHANCE_YOUR_CALM);
    expect(server.counters.streamsRefused).toBe(21);
    await stillServes(port);
  });

  it('RST_STREAM STREAM_CLOSED for DATA after END_STREAM', async () => {
    const { port, held } = await start();
    const c = await open(port);
    c.send(headers(1, REQUEST('/hold')), frame(FrameType.DATA, 0, 1, Buffer.from('late')));
    expect(await c.rstCode(1)).toBe(ErrorCode.STREAM_CLOSED);
    expect(held[0]!.closed).toBe(true);
    expect(held[0]!.rstCode).toBe(ErrorCode.STREAM_CLOSED);
  });

  it('resets a stream whose peer never opens its window once its buffered output passes the bound', async () => {
    const { server, port } = await start({ maxStreamBufferedOutputBytes: 64 * 1024 }, (s) => {
      s.respond({ ':status': 200 });
      // A consumer ignoring write()'s false.
      for (let i = 0; i < 100; i++) s.write(Buffer.alloc(1024));
    });
    const c = await open(port, false);
    c.send(CLIENT_PREFACE, settingsFrame([[SettingId.INITIAL_WINDOW_SIZE, 0]]), headers(1, REQUEST()));
    expect(await c.rstCode(1)).toBe(ErrorCode.CANCEL);
    expect(server.counters.streamOutputOverflows).toBe(1);
    expect(c.frames.some((f) => f.type === FrameType.DATA)).toBe(false);
  });

  it('applies a SETTINGS INITIAL_WINDOW_SIZE change to open streams (a window of 0, then reopened by a frame repeating the setting)', async () => {
    const { port } = await start({}, (s) => {
      s.respond({ ':status': 200 });
      s.write(Buffer.alloc(100, 7));
      s.end({ 'grpc-status': '0' });
    });
    const c = await open(port, false);
    c.send(CLIENT_PREFACE, settingsFrame([[SettingId.INITIAL_WINDOW_SIZE, 0]]), headers(1, REQUEST()));
    await c.waitFor((f) => f.type === FrameType.HEADERS && f.sid === 1);
    await new Promise((r) => setTimeout(r, 100));
    expect(c.frames.some((f) => f.type === FrameType.DATA)).toBe(false);
    // 2,000 entries in one frame, the last one counts.
    const entries: [number, number][] = Array.from({ length: 2000 }, (_, i) => [SettingId.INITIAL_WINDOW_SIZE, i % 2 === 0 ? 10 : 0]);
    entries.push([SettingId.INITIAL_WINDOW_SIZE, 65535]);
    c.send(settingsFrame(entries));
    const data = await c.waitFor((f) => f.type === FrameType.DATA && f.sid === 1);
    expect(data.payload.length).toBe(100);
    const trailers = await c.waitFor((f) => f.type === FrameType.HEADERS && f.sid === 1 && (f.flags & Flag.END_STREAM) !== 0);
    // The trailers waited behind the queued DATA: they come after it on the wire.
    expect(c.frames.indexOf(trailers)).toBeGreaterThan(c.frames.indexOf(data));
  });

  it('answers Trailers-Only without RST_STREAM when the request ends in the same read; with RST_STREAM NO_ERROR when it does not', async () => {
    const { port } = await start();
    const c = await open(port);
    const message = frame(FrameType.DATA, Flag.END_STREAM, 1, Buffer.from([0, 0, 0, 0, 0]));
    // A gRPC unary request: HEADERS, then its message with END_STREAM, in one write.
    c.send(headers(1, REQUEST(), Flag.END_HEADERS), message);
    await c.waitFor((f) => f.type === FrameType.HEADERS && f.sid === 1);
    // A request whose body never comes: the answer is followed by RST_STREAM NO_ERROR (RFC 9113 §8.1).
    c.send(headers(3, REQUEST(), Flag.END_HEADERS));
    expect(await c.rstCode(3)).toBe(ErrorCode.NO_ERROR);
    expect(c.frames.some((f) => f.type === FrameType.RST_STREAM && f.sid === 1)).toBe(false);
  });

  it('sends DATA frames of at most 64 KiB to a peer allowing 16 MiB frames, within its windows', async () => {
    const { server, port } = await start({ maxQueuedOutputBytes: 256 * 1024 }, (s) => {
      s.respond({ ':status': 200 });
      s.write(Buffer.alloc(1024 * 1024, 5));
      s.end({ 'grpc-status': '0' });
    });
    const c = await open(port, false);
    c.send(CLIENT_PREFACE, settingsFrame([[SettingId.MAX_FRAME_SIZE, 16777215], [SettingId.INITIAL_WINDOW_SIZE, 0x7fffffff]]), windowUpdateFrame(0, 0x7fffffff - 65535), headers(1, REQUEST()));
    await c.waitFor((f) => f.type === FrameType.HEADERS && f.sid === 1 && (f.flags & Flag.END_STREAM) !== 0);
    const data = c.frames.filter((f) => f.type === FrameType.DATA);
    expect(data.reduce((n, f) => n + f.payload.length, 0)).toBe(1024 * 1024);
    expect(Math.max(...data.map((f) => f.payload.length))).toBe(65536);
    expect(server.counters.outputOverflows).toBe(0);
  });

  it('destroys a connection that sends no preface in time', async () => {
    const { server, port } = await start({ handshakeTimeoutMs: 200 });
    const c = await open(port, false);
    await c.closedP;
    expect(server.counters.handshakeTimeouts).toBe(1);
  });

  it('sends GOAWAY NO_ERROR to a connection idle longer than the idle timeout, and ends it', async () => {
    const { server, port } = await start({ idleTimeoutMs: 200 });
    const c = await open(port);
    expect(await c.goawayCode()).toBe(ErrorCode.NO_ERROR);
    await c.closedP;
    expect(server.counters.idleTimeouts).toBe(1);
  });

  it('refuses malformed requests with RST_STREAM PROTOCOL_ERROR and keeps the connection', async () => {
    const { server, port } = await start();
    const c = await open(port);
    const base: [string, string][] = [
      [':method', 'POST'],
      [':scheme', 'http'],
      [':path', '/x'],
    ];
    const bad: [string, string][][] = [
      [...base, ['x-crlf', 'a\r\nb']],
      [...base, ['x-nul', 'a\u0000b']],
      [...base, ['x-space', ' padded']],
      [...base, ['connection', 'keep-alive']],
      [...base, ['te', 'gzip']],
      [[':method', 'POST'], [':scheme', 'http']],
      [[':method', 'POST'], ['x-a', 'b'], [':scheme', 'http'], [':path', '/x']],
      [...base, [':status', '200']],
      [...base, ['bad name', 'v']],
    ];
    const blocks = bad.map((list) => HpackEncoder.encode(list));
    // The encoder lower-cases names: an upper-case one is written by hand (literal, new name).
    blocks.push(Buffer.concat([HpackEncoder.encode(base), Buffer.from([0x00, 7]), Buffer.from('X-Upper'), Buffer.from([1]), Buffer.from('v')]));
    bad.push([...base, ['X-Upper', 'v']]);
    c.send(...blocks.map((block, i) => headers(1 + 2 * i, block)));
    for (let i = 0; i < bad.length; i++) expect(await c.rstCode(1 + 2 * i), JSON.stringify(bad[i])).toBe(ErrorCode.PROTOCOL_ERROR);
    expect(server.counters.malformedRequests).toBe(bad.length);
    c.send(headers(1 + 2 * bad.length, REQUEST()));
    await c.waitFor((f) => f.type === FrameType.HEADERS && f.sid === 1 + 2 * bad.length);
  });

  it('does not count a connection with an open stream as idle; GOAWAY follows once its last stream ends', async () => {
    const { server, port, held } = await start({ idleTimeoutMs: 200 });
    const c = await open(port);
    c.send(headers(1, REQUEST('/hold')));
    await new Promise((r) => setTimeout(r, 600));
    expect(c.frames.some((f) => f.type === FrameType.GOAWAY)).toBe(false);
    held[0]!.respond({ ':status': 200 }, { endStream: true });
    const t0 = Date.now();
    expect(await c.goawayCode()).toBe(ErrorCode.NO_ERROR);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(150);
    expect(server.counters.idleTimeouts).toBe(1);
  });

  it('validates options, naming the field and the range', () => {
    expect(() => createH2Server({ maxConcurrentStreams: 0 }, () => {})).toThrow(/maxConcurrentStreams must be an integer in \[1, /);
    expect(() => createH2Server({ initialWindowSizeBytes: 1000 }, () => {})).toThrow(/initialWindowSizeBytes .*\[65535, 2147483647\]/);
  });
});

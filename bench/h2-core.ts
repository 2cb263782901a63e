/**
 * Micro-benchmark of rebind's HTTP/2 core (src/h2) against node:http2:
 *
 *  1. Server CPU per Trailers-Only answer (the bind path: one HEADERS in with
 *     END_STREAM, one pre-encoded HEADERS out with END_STREAM). Both servers
 *     live in this process; the load comes from a child process writing raw
 *     HTTP/2 frames (a constant request template with the stream id patched
 *     in, a fixed number of streams in flight per connection, responses only
 *     framed, not decoded). CPU is process.cpuUsage() of this process over a
 *     round; rounds alternate node/h2 (ABBA) in one run, medians and the ratio
 *     are reported.
 *  2. Memory per idle connection: a fresh server child per kind, N raw
 *     connections opened (preface + SETTINGS, ACKed), RSS / heap / external
 *     deltas after two full GCs, divided by N.
 *
 * Run: npx tsx bench/h2-core.ts [--quick] [--mem-only]
 */
import { fork, type ChildProcess } from 'node:child_process';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { CLIENT_PREFACE, Flag, FrameReader, FrameType, SETTINGS_ACK_FRAME, settingsFrame, writeFrameHeader, type FrameSink } from '../src/h2/frames.js';
import { HpackEncoder } from '../src/h2/hpack.js';
import { createH2Server, H2Headers } from '../src/h2/server.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const argv = process.argv.slice(2);
const role = argv.includes('--role') ? argv[argv.indexOf('--role') + 1] : 'main';
const QUICK = argv.includes('--quick');

type Msg = { id?: number; cmd: string; [k: string]: unknown };

// ---------------------------------------------------------------------------
// Load role: raw HTTP/2 clients.

const REQUEST_BLOCK = HpackEncoder.encode([
  [':method', 'POST'],
  [':scheme', 'http'],
  [':path', '/rebind.v1.Bind/Bind'],
  [':authority', '127.0.0.1'],
  ['content-type', 'application/grpc'],
  ['te', 'trailers'],
  ['user-agent', 'grpc-node-js/1.14 rebind/1 rebind-cid/0123456789abcdef'],
]);

class LoadConn implements FrameSink {
  readonly sock: net.Socket;
  private readonly reader = new FrameReader(this, 1 << 24);
  private nextId = 1;
  ready: Promise<void>;
  private onReady!: () => void;
  onAnswer: (() => void) | null = null;
  private pendingOut: Buffer[] = [];

  constructor(port: number) {
    this.sock = net.connect(port, '127.0.0.1');
    this.sock.setNoDelay(true);
    this.ready = new Promise((r) => (this.onReady = r));
    this.sock.on('connect', () => this.sock.write(Buffer.concat([CLIENT_PREFACE, settingsFrame([])])));
    this.sock.on('data', (c: Buffer) => {
      this.reader.push(c);
      if (this.pendingOut.length > 0) {
        this.sock.write(this.pendingOut.length === 1 ? this.pendingOut[0]! : Buffer.concat(this.pendingOut));
        this.pendingOut = [];
      }
    });
    this.sock.on('error', () => {});
  }

  onFrame(type: number, flags: number, sid: number, payload: Buffer): void {
    if (type === FrameType.SETTINGS && (flags & Flag.ACK) === 0) {
      this.pendingOut.push(SETTINGS_ACK_FRAME);
      this.onReady();
      return;
    }
    // An answer is a HEADERS with END_STREAM, or a reset with an error (RST_STREAM NO_ERROR may follow an answer).
    if ((type === FrameType.HEADERS && (flags & Flag.END_STREAM) !== 0) || (type === FrameType.RST_STREAM && payload.readUInt32BE(0) !== 0)) {
      if (sid !== 0) this.onAnswer?.();
    }
  }

  /** `grpc`: HEADERS, then an empty message (5 bytes) with END_STREAM, as grpc-js sends a unary call. */
  request(grpc: boolean): Buffer {
    const b = Buffer.allocUnsafe(9 + REQUEST_BLOCK.length + (grpc ? 14 : 0));
    writeFrameHeader(b, 0, REQUEST_BLOCK.length, FrameType.HEADERS, Flag.END_HEADERS | (grpc ? 0 : Flag.END_STREAM), this.nextId);
    REQUEST_BLOCK.copy(b, 9);
    if (grpc) {
      const off = 9 + REQUEST_BLOCK.length;
      writeFrameHeader(b, off, 5, FrameType.DATA, Flag.END_STREAM, this.nextId);
      b.fill(0, off + 9, off + 14);
    }
    this.nextId += 2;
    return b;
  }

  queue(b: Buffer): void {
    this.pendingOut.push(b);
  }
}

async function runBinds(port: number, count: number, connections: number, inflight: number, grpc: boolean): Promise<number> {
  const conns = Array.from({ length: connections }, () => new LoadConn(port));
  await Promise.all(conns.map((c) => c.ready));
  const t0 = process.hrtime.bigint();
  let sent = 0;
  let answered = 0;
  await new Promise<void>((resolve) => {
    for (const c of conns) {
      c.onAnswer = () => {
        answered++;
        if (sent < count) {
          sent++;
          c.queue(c.request(grpc));
        }
        if (answered === count) resolve();
      };
      const first: Buffer[] = [];
      for (let i = 0; i < inflight && sent < count; i++, sent++) first.push(c.request(grpc));
      c.sock.write(Buffer.concat(first));
    }
  });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  for (const c of conns) c.sock.destroy();
  return ms;
}

let idle: LoadConn[] = [];

function loadRole(): void {
  process.on('message', (m: Msg) => {
    void (async () => {
      if (m.cmd === 'binds') {
        const ms = await runBinds(m['port'] as number, m['count'] as number, m['connections'] as number, m['inflight'] as number, m['grpc'] === true);
        process.send!({ id: m.id, ms });
      } else if (m.cmd === 'idle') {
        const n = m['n'] as number;
        for (let i = 0; i < n; i += 100) {
          const batch = Array.from({ length: Math.min(100, n - i) }, () => new LoadConn(m['port'] as number));
          await Promise.all(batch.map((c) => c.ready));
          idle.push(...batch);
        }
        process.send!({ id: m.id });
      } else if (m.cmd === 'closeIdle') {
        for (const c of idle) c.sock.destroy();
        idle = [];
        process.send!({ id: m.id });
      }
    })();
  });
  process.on('disconnect', () => process.exit(0));
}

// ---------------------------------------------------------------------------
// Memory server role.

/**
 * Sum of self sizes in a V8 heap snapshot, with native allocations the
 * snapshot attributes (nghttp2_memory: nghttp2's own buffers, which RSS shows
 * only once their pages are touched) counted separately.
 */
function snapshotTotals(): { totalBytes: number; nghttp2Bytes: number } {
  const file = v8.writeHeapSnapshot(path.join(os.tmpdir(), `h2-core-${process.pid}.heapsnapshot`));
  const snap = JSON.parse(fs.readFileSync(file, 'utf8')) as {
    snapshot: { meta: { node_fields: string[] } };
    nodes: number[];
    strings: string[];
  };
  fs.unlinkSync(file);
  const fields = snap.snapshot.meta.node_fields;
  const width = fields.length;
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  let totalBytes = 0;
  let nghttp2Bytes = 0;
  for (let i = 0; i < snap.nodes.length; i += width) {
    const size = snap.nodes[i + sizeAt]!;
    totalBytes += size;
    if (snap.strings[snap.nodes[i + nameAt]!] === 'Node / nghttp2_memory') nghttp2Bytes += size;
  }
  return { totalBytes, nghttp2Bytes };
}

function memServerRole(): void {
  const kind = argv[argv.indexOf('--kind') + 1];
  let port = 0;
  const ready = new Promise<void>((resolve) => {
    if (kind === 'net') {
      // The floor: a plain socket that answers the preface with an empty SETTINGS.
      const s = net.createServer((sock) => {
        sock.once('data', () => sock.write(settingsFrame([])));
        sock.on('data', () => {});
        sock.on('error', () => {});
      });
      s.listen(0, '127.0.0.1', () => {
        port = (s.address() as net.AddressInfo).port;
        resolve();
      });
    } else if (kind === 'node') {
      const s = http2.createServer();
      s.on('stream', (st) => st.respond({ ':status': 200 }, { endStream: true }));
      s.listen(0, '127.0.0.1', () => {
        port = (s.address() as net.AddressInfo).port;
        resolve();
      });
    } else {
      const s = createH2Server({}, (st) => st.respond({ ':status': 200 }, { endStream: true }));
      void s.listen(0).then((a) => {
        port = a.port;
        resolve();
      });
    }
  });
  process.on('message', (m: Msg) => {
    void ready.then(() => {
      if (m.cmd === 'port') process.send!({ id: m.id, port });
      else if (m.cmd === 'mem') {
        gc();
        gc();
        process.send!({ id: m.id, mem: process.memoryUsage(), snapshot: m['snapshot'] === true ? snapshotTotals() : null });
      }
    });
  });
  process.on('disconnect', () => process.exit(0));
}

// ---------------------------------------------------------------------------
// Orchestrator.

let nextMsgId = 1;
function ask(child: ChildProcess, m: Msg): Promise<Record<string, unknown>> {
  const id = nextMsgId++;
  return new Promise((resolve) => {
    const on = (r: Record<string, unknown>): void => {
      if (r['id'] !== id) return;
      child.off('message', on);
      resolve(r);
    };
    child.on('message', on);
    child.send({ ...m, id });
  });
}

function spawnRole(args: string[]): ChildProcess {
  return fork(__filename, args, { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function main(): Promise<void> {
  const ROUNDS = argv.includes("--mem-only") ? 0 : QUICK ? 4 : 8;
  const COUNT = QUICK ? 20_000 : 60_000;
  const CONNECTIONS = 4;
  const INFLIGHT = 32;
  const IDLE = QUICK ? 1000 : 2000;

  // --- CPU per Trailers-Only answer ---
  const nodeServer = http2.createServer();
  const nodeHeaders = { ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '5', 'grpc-message': 'forward', 'x-rebind-forward': '10.0.0.7:50051' };
  nodeServer.on('stream', (s) => {
    s.respond(nodeHeaders, { endStream: true });
    // The request body is not wanted, but node:http2 closes a stream only once its readable side is consumed.
    s.resume();
  });
  await new Promise<void>((r) => nodeServer.listen(0, '127.0.0.1', r));
  const nodePort = (nodeServer.address() as net.AddressInfo).port;
  const forward = H2Headers.encode(nodeHeaders);
  const h2 = createH2Server({}, (s) => s.respond(forward, { endStream: true }));
  const h2Port = (await h2.listen(0)).port;

  const load = spawnRole(['--role', 'load']);
  const ports = { node: nodePort, h2: h2Port } as const;
  for (const grpc of [false, true]) {
    if (ROUNDS === 0) break;
    const perAnswer: Record<'node' | 'h2', number[]> = { node: [], h2: [] };
    const rate: Record<'node' | 'h2', number[]> = { node: [], h2: [] };
    // Warm-up both.
    for (const k of ['node', 'h2'] as const) await ask(load, { cmd: 'binds', port: ports[k], count: 5000, connections: CONNECTIONS, inflight: INFLIGHT, grpc });
    for (let r = 0; r < ROUNDS; r++) {
      const order: ('node' | 'h2')[] = r % 2 === 0 ? ['node', 'h2'] : ['h2', 'node'];
      for (const k of order) {
        const c0 = process.cpuUsage();
        const reply = await ask(load, { cmd: 'binds', port: ports[k], count: COUNT, connections: CONNECTIONS, inflight: INFLIGHT, grpc });
        const c = process.cpuUsage(c0);
        perAnswer[k].push((c.user + c.system) / COUNT);
        rate[k].push(COUNT / ((reply['ms'] as number) / 1000));
      }
    }
    const n = median(perAnswer.node);
    const h = median(perAnswer.h2);
    const what = grpc ? 'request HEADERS + 5-byte message with END_STREAM (grpc-js unary shape)' : 'request HEADERS with END_STREAM';
    console.log(`server CPU per Trailers-Only answer, ${what} (${ROUNDS} ABBA rounds of ${COUNT}, ${CONNECTIONS} connections x ${INFLIGHT} in flight):`);
    console.log(`  node:http2  median ${n.toFixed(2)} us  (rounds ${perAnswer.node.map((x) => x.toFixed(1)).join(' ')})  ${median(rate.node).toFixed(0)} answers/s`);
    console.log(`  src/h2      median ${h.toFixed(2)} us  (rounds ${perAnswer.h2.map((x) => x.toFixed(1)).join(' ')})  ${median(rate.h2).toFixed(0)} answers/s`);
    console.log(`  ratio h2/node ${(h / n).toFixed(3)}`);
  }
  if (ROUNDS === 0) console.log('(--mem-only: CPU rounds skipped)');
  nodeServer.close();
  h2.destroy();

  // --- memory per idle connection ---
  for (const kind of ['net', 'node', 'h2'] as const) {
    const server = spawnRole(['--role', 'mem-server', '--kind', kind]);
    const port = (await ask(server, { cmd: 'port' }))['port'] as number;
    const before = (await ask(server, { cmd: 'mem' }))['mem'] as NodeJS.MemoryUsage;
    await ask(load, { cmd: 'idle', port, n: IDLE });
    await new Promise((r) => setTimeout(r, 500));
    const after = (await ask(server, { cmd: 'mem' }))['mem'] as NodeJS.MemoryUsage;
    // Heap snapshots after the RSS figures (parsing one grows RSS): with the connections, then without.
    const snapAfter = (await ask(server, { cmd: 'mem', snapshot: true }))['snapshot'] as { totalBytes: number; nghttp2Bytes: number };
    await ask(load, { cmd: 'closeIdle' });
    await new Promise((r) => setTimeout(r, 500));
    const snapBefore = (await ask(server, { cmd: 'mem', snapshot: true }))['snapshot'] as { totalBytes: number; nghttp2Bytes: number };
    const per = (k: keyof NodeJS.MemoryUsage): string => ((after[k] - before[k]) / IDLE).toFixed(0);
    const snapPer = ((snapAfter.totalBytes - snapBefore.totalBytes) / IDLE).toFixed(0);
    const ngPer = ((snapAfter.nghttp2Bytes - snapBefore.nghttp2Bytes) / IDLE).toFixed(0);
    console.log(
      `idle connection memory, ${kind === 'node' ? 'node:http2' : kind === 'net' ? 'net.Socket only (floor)' : 'src/h2'} (${IDLE} connections): ` +
        `rss ${per('rss')} B, heapUsed ${per('heapUsed')} B, external ${per('external')} B, heap snapshot ${snapPer} B (of which nghttp2_memory ${ngPer} B) per connection`,
    );
    server.kill();
  }
  load.kill();
}

if (role === 'load') loadRole();
else if (role === 'mem-server') memServerRole();
else void main().then(() => process.exit(0));

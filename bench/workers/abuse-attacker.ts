/**
 * The abuse benchmark's attacker: one vector at a time, for a fixed time, as
 * fast as it can within bounded concurrency (or up to a bounded number of
 * things held open), counting the requests it sent. Every vector closes
 * everything it opened before it returns, so that what the balancer or the
 * replica still holds afterwards is theirs.
 *   run { vector, durationMs, targets, scale }  -> { sent, notes, errors }
 * `scale` multiplies the caps on things held open (1 in full runs).
 */
import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { controlProto } from '../../src/common/proto';
import type { BalancerMessage__Output } from '../../src/generated/rebind/v1/BalancerMessage';
import type { ControlClient } from '../../src/generated/rebind/v1/Control';
import type { ReplicaMessage } from '../../src/generated/rebind/v1/ReplicaMessage';
import { ECHO_SERVER_STREAM_PATH, ECHO_UNARY_PATH, encodeEchoRequest, encodeOrcaRequest, grpcFrame } from '../lib/echo';
import { fatal, send, serve } from './worker-util';

/**
 * The attacker's own address: another loopback address than the legitimate
 * clients' 127.0.0.1, as another host would have (Linux routes all of
 * 127.0.0.0/8 to the loopback interface). Per-caller bounds key on it.
 */
const ATTACKER_ADDRESS = '127.0.0.2';

export interface Targets {
  /** The balancer's data port, control port and admin HTTP port (host:port). */
  data: string;
  control: string;
  admin: string;
  /** The attacked replica's Echo server in group "echo" (it serves ORCA too). */
  replica: string;
}

interface Context {
  deadline: number;
  targets: Targets;
  scale: number;
  /** Records a distinct error (a few are kept). */
  error(what: string): void;
}

interface Outcome {
  sent: number;
  notes: string;
}

const ORCA_PATH = '/xds.service.orca.v3.OpenRcaService/StreamCoreMetrics';
const randomId = (n: number) => randomBytes(n).toString('base64url').slice(0, n);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const tick = () => new Promise((r) => setImmediate(r));
const grpcHeaders = (path: string, userAgent = 'grpc-node-js/1.14.0'): http2.OutgoingHttpHeaders => ({
  ':method': 'POST',
  ':path': path,
  'content-type': 'application/grpc',
  te: 'trailers',
  'user-agent': userAgent,
});

/** Runs `one` with `concurrency` loops until the deadline. */
async function loops(ctx: Context, concurrency: number, one: () => Promise<void>): Promise<void> {
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < ctx.deadline) {
        try {
          await one();
        } catch (err) {
          ctx.error((err as Error).message);
        }
      }
    }),
  );
}

/** Streams held open on a pool of HTTP/2 connections, re-opened when the peer closes them, until the deadline. */
async function holdStreams(
  ctx: Context,
  authority: string,
  opts: { connections: number; streamsPerConnection: number; settings?: http2.Settings; open: (session: http2.ClientHttp2Session) => http2.ClientHttp2Stream },
): Promise<{ sent: number; connectionsOpened: number; closedByPeer: number }> {
  const sessions = new Set<http2.ClientHttp2Session>();
  const streamsOf = new Map<http2.ClientHttp2Session, number>();
  let sent = 0;
  let connectionsOpened = 0;
  let closedByPeer = 0;
  try {
    while (Date.now() < ctx.deadline) {
      let opened = 0;
      if (sessions.size < opts.connections) {
        const session = http2.connect(`http://${authority}`, { settings: { enablePush: false, ...opts.settings }, localAddress: ATTACKER_ADDRESS } as http2.SecureClientSessionOptions);
        connectionsOpened++;
        sent++;
        opened++;
        session.on('error', (err) => ctx.error(`connection: ${err.message}`));
        session.on('close', () => {
          sessions.delete(session);
          streamsOf.delete(session);
        });
        sessions.add(session);
        streamsOf.set(session, 0);
      }
      for (const session of sessions) {
        if (session.destroyed || session.closed) continue;
        while ((streamsOf.get(session) ?? 0) < opts.streamsPerConnection && Date.now() < ctx.deadline) {
          let stream: http2.ClientHttp2Stream;
          try {
            stream = opts.open(session);
          } catch (err) {
            ctx.error(`stream: ${(err as Error).message}`);
            break;
          }
          sent++;
          opened++;
          streamsOf.set(session, (streamsOf.get(session) ?? 0) + 1);
          stream.on('error', (err) => ctx.error(`stream: ${err.message}`));
          stream.on('close', () => {
            if (Date.now() < ctx.deadline) closedByPeer++;
            if (streamsOf.has(session)) streamsOf.set(session, streamsOf.get(session)! - 1);
          });
          if (opened % 50 === 0) await tick();
        }
      }
      if (opened === 0) await sleep(20);
      else await tick();
    }
  } finally {
    for (const s of sessions) s.destroy();
  }
  return { sent, connectionsOpened, closedByPeer };
}

/** 1. Many ORCA streams to a replica (100 ms reports), never read: an HTTP/2 window of 0, and paused. */
async function orcaStreams(ctx: Context): Promise<Outcome> {
  const body = grpcFrame(encodeOrcaRequest(100));
  const r = await holdStreams(ctx, ctx.targets.replica, {
    connections: 10,
    streamsPerConnection: Math.round(500 * ctx.scale),
    settings: { initialWindowSize: 0 },
    open: (session) => {
      const stream = session.request(grpcHeaders(ORCA_PATH), { endStream: false });
      stream.end(body);
      stream.pause();
      return stream;
    },
  });
  return { sent: r.sent, notes: `${r.connectionsOpened} connections, up to ${Math.round(500 * ctx.scale)} ORCA streams each; ${r.closedByPeer} streams closed by the replica` };
}

/**
 * 2. Many /api/events viewers that never read, while the group's strategy
 * flips back and forth as fast as the admin port answers (two flippers, one
 * request each in flight): every flip is a decision the balancer pushes to
 * every viewer.
 */
async function sseViewers(ctx: Context): Promise<Outcome> {
  const cap = Math.round(400 * ctx.scale);
  const sockets = new Set<net.Socket>();
  const [host, port] = [ctx.targets.admin.replace(/:[0-9]+$/, ''), Number(/:([0-9]+)$/.exec(ctx.targets.admin)![1])];
  let sent = 0;
  let closedByPeer = 0;
  let flips = 0;
  const flipStatuses = new Map<number, number>();
  const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
  const strategies = ['p2c', 'minimum_dispersion'];
  const flipper = async () => {
    while (Date.now() < ctx.deadline) {
      const body = JSON.stringify({ strategy: strategies[flips % 2] });
      const status = await new Promise<number>((resolve) => {
        const req = http.request({ host, port, path: '/api/groups/echo/strategy', method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', (err) => {
          ctx.error(`strategy flip: ${err.message}`);
          resolve(0);
        });
        req.end(body);
      });
      flips++;
      flipStatuses.set(status, (flipStatuses.get(status) ?? 0) + 1);
    }
  };
  const flippers = Promise.all([flipper(), flipper()]);
  try {
    while (Date.now() < ctx.deadline) {
      if (sockets.size >= cap) {
        await sleep(20);
        continue;
      }
      const socket = net.connect({ port, host, localAddress: ATTACKER_ADDRESS });
      sent++;
      sockets.add(socket);
      socket.on('error', (err) => ctx.error(`viewer: ${err.message}`));
      socket.on('close', () => {
        if (Date.now() < ctx.deadline) closedByPeer++;
        sockets.delete(socket);
      });
      socket.write(`GET /api/events HTTP/1.1\r\nhost: ${ctx.targets.admin}\r\naccept: text/event-stream\r\n\r\n`);
      socket.pause();
      if (sent % 20 === 0) await tick();
    }
    await flippers;
  } finally {
    for (const s of sockets) s.destroy();
    agent.destroy();
  }
  const statuses = [...flipStatuses].map(([s, n]) => `${n}x ${s}`).join(', ');
  return { sent, notes: `${sent} viewers opened (at most ${cap} at once, ${closedByPeer} closed by the balancer); ${flips} strategy flips answered ${statuses}` };
}

function controlClient(address: string): ControlClient {
  return new (controlProto().rebind.v1.Control)(address, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': 4 * 1024 * 1024 }) as unknown as ControlClient;
}

/**
 * One attachment: sends `hello`, waits for the balancer's first message or
 * the end of the call; then (if `then`) runs it. Resolves with how it ended.
 */
function attachOnce(client: ControlClient, hello: ReplicaMessage, then?: (call: grpc.ClientDuplexStream<ReplicaMessage, BalancerMessage__Output>) => void): Promise<string> {
  return new Promise((resolve) => {
    const call = client.Attach({ deadline: Date.now() + 10_000 });
    let attached = false;
    call.on('data', (m: BalancerMessage__Output) => {
      if (!attached && m.attached) {
        attached = true;
        if (then) then(call);
        else call.end();
      }
    });
    call.on('error', (err: grpc.ServiceError) => resolve(attached ? `attached, then ${grpc.status[err.code]}` : grpc.status[err.code] ?? String(err.code)));
    call.on('status', (s: grpc.StatusObject) => s.code === grpc.status.OK && resolve(attached ? 'attached' : 'OK before attached'));
    call.write(hello);
  });
}

function countInto(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

const summary = (map: Map<string, number>) => [...map].map(([k, n]) => `${n}x ${k}`).join(', ');

/** 3. Attachments whose Hello names a fresh group each time and is refused (a path group "echo" owns). */
async function refusedHellos(ctx: Context): Promise<Outcome> {
  const clients = [0, 1, 2, 3].map(() => controlClient(ctx.targets.control));
  const outcomes = new Map<string, number>();
  let sent = 0;
  await loops(ctx, 32, async () => {
    sent++;
    const hello = { hello: { protocolVersion: 1, group: `abuse-${randomId(12)}`, address: '127.0.0.1:9', methods: [{ path: ECHO_UNARY_PATH, kind: 'UNARY' as const }] } };
    countInto(outcomes, await attachOnce(clients[sent % clients.length]!, hello));
  });
  for (const c of clients) c.close();
  return { sent, notes: `hellos for fresh groups naming ${ECHO_UNARY_PATH}: ${summary(outcomes)}` };
}

/** 4. Rebind-aware binds, each from a fresh client id with a ~1 KB user-agent; the forwards are never followed. */
async function freshClientBinds(ctx: Context): Promise<Outcome> {
  const sessions = [0, 1, 2, 3].map(() => {
    const s = http2.connect(`http://${ctx.targets.data}`, { settings: { enablePush: false }, localAddress: ATTACKER_ADDRESS } as http2.SecureClientSessionOptions);
    s.on('error', (err) => ctx.error(`connection: ${err.message}`));
    return s;
  });
  const body = grpcFrame(encodeEchoRequest('bind me', 0));
  const statuses = new Map<string, number>();
  let sent = 0;
  await loops(ctx, 128, async () => {
    const session = sessions[sent % sessions.length]!;
    let ua = `grpc-node-js/1.14 rebind/1 rebind-cid/${randomId(16)}`;
    while (ua.length < 960) ua += ` pad/${randomId(24)}`;
    sent++;
    await new Promise<void>((resolve) => {
      const stream = session.request({ ...grpcHeaders(ECHO_UNARY_PATH, ua) }, { endStream: false });
      stream.on('response', (headers) => {
        const status = headers['grpc-status'];
        if (status !== undefined) countInto(statuses, `grpc-status ${String(status)}${headers['rebind-forward'] !== undefined ? ' (forward)' : ''}`);
      });
      stream.on('trailers', (trailers) => countInto(statuses, `grpc-status ${String(trailers['grpc-status'])}`));
      stream.on('error', (err) => ctx.error(`bind: ${err.message}`));
      stream.on('close', () => resolve());
      stream.resume();
      stream.end(body);
    });
  });
  for (const s of sessions) s.destroy();
  return { sent, notes: `binds with fresh client ids: ${summary(statuses)}` };
}

/** Paths per Hello in hello_paths: about 240 KB, just under the default limits.maxControlMessageBytes (256 KiB). */
const HELLO_PATHS = 600;

/** 5. Attach and detach again and again, each Hello listing HELLO_PATHS fresh method paths of ~400 characters in a fresh group. */
async function helloPaths(ctx: Context): Promise<Outcome> {
  const clients = [0, 1].map(() => controlClient(ctx.targets.control));
  const outcomes = new Map<string, number>();
  let sent = 0;
  await loops(ctx, 4, async () => {
    sent++;
    const prefix = `/abuse${randomId(16).replace(/[^A-Za-z0-9]/g, 'x')}.${'S'.repeat(360)}/M`;
    const methods = Array.from({ length: HELLO_PATHS }, (_, i) => ({ path: `${prefix}${i}${randomId(12).replace(/[^A-Za-z0-9]/g, 'y')}`, kind: 'UNARY' as const }));
    const hello = { hello: { protocolVersion: 1, group: `paths-${randomId(12)}`, address: '127.0.0.1:9', methods } };
    countInto(
      outcomes,
      await attachOnce(clients[sent % clients.length]!, hello, (call) => {
        call.write({ detach: { reason: 'abuse bench' } });
        call.end();
      }),
    );
  });
  for (const c of clients) c.close();
  return { sent, notes: `attach + detach with ${HELLO_PATHS} paths of ~400 characters each (a Hello just under the default 256 KiB message limit): ${summary(outcomes)}` };
}

/** 6. One attachment flooding NaN load reports and never reading the balancer's notices. */
async function controlNotices(ctx: Context): Promise<Outcome> {
  const client = controlClient(ctx.targets.control);
  let sent = 0;
  let ended = '';
  const hello = { hello: { protocolVersion: 1, group: `flood-${randomId(8)}`, address: '127.0.0.1:9', methods: [{ path: `/abuse.Flood${randomId(8).replace(/[^A-Za-z0-9]/g, 'x')}/M`, kind: 'UNARY' as const }] } };
  // Re-attach if the balancer ends the attachment, until the deadline.
  while (Date.now() < ctx.deadline) {
    ended = await attachOnce(client, hello, (call) => {
      call.removeAllListeners('data');
      call.pause();
      void (async () => {
        let seq = 0;
        while (Date.now() < ctx.deadline && !call.destroyed) {
          seq++;
          sent++;
          const ok = call.write({ report: { seq, intervalMs: 500, callsPerS: Number.NaN, latencyMs: 1, eventLoopUtilization: 0.1, cpuCores: 0.1 } });
          if (!ok) await Promise.race([new Promise((r) => call.once('drain', r)), sleep(Math.max(0, ctx.deadline - Date.now()))]);
          else if (seq % 100 === 0) await tick();
        }
        call.cancel();
      })();
    });
    sent++;
  }
  client.close();
  return { sent, notes: `NaN load reports on a paused control stream; last attachment ended: ${ended}` };
}

/** 7. Many idle HTTP/2 connections to the data port, and many held streams (headers, no body) on others. */
async function dataStreams(ctx: Context): Promise<Outcome> {
  const connections = Math.round(100 * ctx.scale);
  const [idle, busy] = await Promise.all([
    holdStreams(ctx, ctx.targets.data, { connections, streamsPerConnection: 0, open: () => undefined as never }),
    holdStreams(ctx, ctx.targets.data, {
      connections,
      streamsPerConnection: 100,
      open: (session) => {
        const stream = session.request(grpcHeaders(ECHO_UNARY_PATH), { endStream: false });
        stream.resume();
        return stream;
      },
    }),
  ]);
  return {
    sent: idle.sent + busy.sent,
    notes: `${idle.connectionsOpened} idle connections; ${busy.connectionsOpened} connections holding up to 100 unfinished Echo/Unary calls each (${busy.sent - busy.connectionsOpened} streams, ${busy.closedByPeer} closed by the balancer)`,
  };
}

/** 8. Plain clients through the balancer to the per-request group: ServerStream of large replies, never read. */
async function proxyStall(ctx: Context): Promise<Outcome> {
  const body = grpcFrame(encodeEchoRequest('x'.repeat(32 * 1024), 100_000));
  const perConnection = Math.round(100 * ctx.scale);
  const r = await holdStreams(ctx, ctx.targets.data, {
    connections: 10,
    streamsPerConnection: perConnection,
    settings: { initialWindowSize: 0 },
    open: (session) => {
      const stream = session.request(grpcHeaders(ECHO_SERVER_STREAM_PATH), { endStream: false });
      stream.end(body);
      stream.pause();
      return stream;
    },
  });
  return { sent: r.sent, notes: `${r.connectionsOpened} connections, up to ${perConnection} streams each asking for 100,000 replies of 32 KB, window 0; ${r.closedByPeer} streams closed by the balancer` };
}

/** Control run: nothing, for the vector's duration. */
async function idle(ctx: Context): Promise<Outcome> {
  await sleep(Math.max(0, ctx.deadline - Date.now()));
  return { sent: 0, notes: 'no attack (control run)' };
}

export const VECTORS: Record<string, (ctx: Context) => Promise<Outcome>> = {
  idle,
  orca_streams: orcaStreams,
  sse_viewers: sseViewers,
  refused_hellos: refusedHellos,
  fresh_client_binds: freshClientBinds,
  hello_paths: helloPaths,
  control_notices: controlNotices,
  data_streams: dataStreams,
  proxy_stall: proxyStall,
};

if (require.main === module) {
  serve(async (m) => {
    if (m.type !== 'run') throw new Error(`unknown request ${m.type}`);
    const vector = VECTORS[String(m['vector'])];
    if (vector === undefined) throw new Error(`unknown vector ${String(m['vector'])}`);
    const errors = new Set<string>();
    const ctx: Context = {
      deadline: Date.now() + Number(m['durationMs']),
      targets: m['targets'] as Targets,
      scale: Number(m['scale'] ?? 1),
      error: (what) => {
        if (errors.size < 8) errors.add(what.slice(0, 200));
      },
    };
    const outcome = await vector(ctx);
    return { ...outcome, errors: [...errors] };
  });
  process.on('uncaughtException', fatal);
  send({ type: 'ready' });
}

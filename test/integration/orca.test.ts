/**
 * ORCA: rebind replicas serve out-of-band load reports, so a standard
 * grpc-js client with weighted_round_robin balances over them.
 */
import * as grpc from '@grpc/grpc-js';
import * as http2 from 'node:http2';
import { afterEach, describe, expect, it } from 'vitest';
import { attach, type AttachOptions } from '../../src/index';
import { ORCA_SERVICE_PATH, orcaServiceDefinition } from '../../src/replica/orca';
import { echoClient, startBalancer, startReplica, stopReplica, unary, type TestReplica } from '../support/cluster';
import { startEchoServer } from '../support/echo';

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups.length = 0;
});

async function replicas(n: number): Promise<TestReplica[]> {
  const balancer = await startBalancer([{ name: 'echo', reportIntervalMs: 200 }]);
  cleanups.push(() => balancer.stop());
  const out: TestReplica[] = [];
  for (let i = 0; i < n; i++) {
    const r = await startReplica(balancer, `R${i}`);
    cleanups.push(() => stopReplica(r));
    out.push(r);
  }
  return out;
}

describe('ORCA out-of-band load reports', () => {
  it('StreamCoreMetrics sends rps, eps, application and CPU utilization at the asked interval', async () => {
    const [r] = await replicas(1);
    const stub = echoClient(r!.address);
    cleanups.push(() => stub.close());
    const Orca = grpc.makeGenericClientConstructor(orcaServiceDefinition(), 'OpenRcaService');
    const orca = new Orca(r!.address, grpc.credentials.createInsecure()) as unknown as {
      StreamCoreMetrics(req: object): grpc.ClientReadableStream<Record<string, number>>;
      close(): void;
    };
    cleanups.push(() => orca.close());
    const reports: Record<string, number>[] = [];
    const call = orca.StreamCoreMetrics({ report_interval: { seconds: 0, nanos: 200_000_000 } });
    call.on('data', (m) => reports.push(m));
    call.on('error', () => undefined);
    const started = Date.now();
    while (Date.now() - started < 700) await unary(stub, { text: 'load' });
    call.cancel();
    expect(reports.length).toBeGreaterThanOrEqual(2);
    const busiest = reports.reduce((a, b) => (b.rps_fractional! > a.rps_fractional! ? b : a));
    expect(busiest.rps_fractional).toBeGreaterThan(50);
    expect(busiest.application_utilization).toBeGreaterThan(0);
    expect(busiest.application_utilization).toBeLessThanOrEqual(1);
    expect(busiest.eps).toBe(0);
    // The stream itself is not counted as a call in flight.
    expect(r!.replica.meter.inFlight).toBe(0);
  });

  it("a stock grpc-js weighted_round_robin client balances over rebind replicas", async () => {
    const rs = await replicas(2);
    const target = `ipv4:${rs.map((r) => r.address).join(',')}`;
    const client = echoClient(target, {
      'grpc.service_config': JSON.stringify({
        loadBalancingConfig: [{ weighted_round_robin: { enable_oob_load_report: true, oob_load_reporting_period: '0.2s', blackout_period: '0s', weight_update_period: '0.2s' } }],
      }),
    });
    cleanups.push(() => client.close());
    const served: Record<string, number> = {};
    for (let i = 0; i < 200; i++) {
      const reply = await unary(client, { text: `w${i}` });
      served[reply.servedBy] = (served[reply.servedBy] ?? 0) + 1;
    }
    expect(Object.keys(served).sort()).toEqual(['R0', 'R1']);
    expect(Math.min(...Object.values(served))).toBeGreaterThan(40);
  });
});

type OrcaReport = Record<string, number>;
interface OrcaClient {
  StreamCoreMetrics(req: object): grpc.ClientReadableStream<OrcaReport>;
  close(): void;
}

function orcaClient(address: string): OrcaClient {
  const Orca = grpc.makeGenericClientConstructor(orcaServiceDefinition(), 'OpenRcaService');
  const orca = new Orca(address, grpc.credentials.createInsecure()) as unknown as OrcaClient;
  cleanups.push(() => orca.close());
  return orca;
}

/** A replica attached with `extra` options (startReplica takes none of the ORCA ones). */
async function replicaWith(extra: Partial<AttachOptions>) {
  const balancer = await startBalancer([{ name: 'echo', reportIntervalMs: 200 }]);
  cleanups.push(() => balancer.stop());
  const { server, address } = await startEchoServer('L0');
  const replica = await attach(server, { balancer: balancer.controlAddress, group: 'echo', address, ...extra });
  cleanups.push(async () => {
    await replica.detach('test over');
    server.forceShutdown();
  });
  return { server, address, replica };
}

const EVERY_100_MS = { report_interval: { seconds: 0, nanos: 100_000_000 } };

/** The first thing a StreamCoreMetrics call yields: a report, an error, or nothing within `timeoutMs`. */
function firstOutcome(call: grpc.ClientReadableStream<OrcaReport>, timeoutMs = 5000): Promise<'report' | 'nothing' | grpc.ServiceError> {
  return new Promise((resolve) => {
    call.once('data', () => resolve('report'));
    call.once('error', (err: grpc.ServiceError) => resolve(err));
    setTimeout(() => resolve('nothing'), timeoutMs).unref();
  });
}

describe('ORCA limits', () => {
  it('refuses the stream beyond orca.maxStreams with RESOURCE_EXHAUSTED, counts it, and frees a slot when a stream ends', async () => {
    const { address, replica } = await replicaWith({ orca: { maxStreams: 3 } });
    const orca = orcaClient(address);
    const open: grpc.ClientReadableStream<OrcaReport>[] = [];
    for (let i = 0; i < 3; i++) {
      const call = orca.StreamCoreMetrics(EVERY_100_MS);
      call.on('error', () => undefined);
      cleanups.push(() => call.cancel());
      expect(await firstOutcome(call)).toBe('report');
      open.push(call);
    }
    const fourth = orca.StreamCoreMetrics(EVERY_100_MS);
    fourth.on('error', () => undefined);
    cleanups.push(() => fourth.cancel());
    const outcome = await firstOutcome(fourth);
    expect(outcome).toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED });
    expect((outcome as grpc.ServiceError).details).toMatch(/at most 3 ORCA streams \(orca\.maxStreams\)/);
    expect(replica.refusals.get('orca_streams')).toBe(1);
    // The others are unaffected, and ending one frees its slot.
    open[0]!.cancel();
    let outcomeAfter: Awaited<ReturnType<typeof firstOutcome>> = 'nothing';
    const deadline = Date.now() + 10_000;
    while (outcomeAfter !== 'report' && Date.now() < deadline) {
      // The cancellation reaches the replica asynchronously: try until a slot is free.
      const again = orca.StreamCoreMetrics(EVERY_100_MS);
      again.on('error', () => undefined);
      cleanups.push(() => again.cancel());
      outcomeAfter = await firstOutcome(again, 2000);
      if (outcomeAfter !== 'report') await new Promise((r) => setTimeout(r, 200));
    }
    expect(outcomeAfter).toBe('report');
  });

  it('a client that never reads gets at most one report buffered, then its stream is reset (RESOURCE_EXHAUSTED) and counted', async () => {
    const { server, address, replica } = await replicaWith({ orca: { maxStreams: 1, blockedTimeoutMs: 1000 } });
    // Watch, from inside the server, what is buffered for the stream: the gRPC call's pending
    // messages and the HTTP/2 stream's pending bytes.
    const internals = server as unknown as { handlers: Map<string, { func: (call: grpc.ServerWritableStream<unknown, unknown>) => void }>; http2Servers: Map<http2.Http2Server, unknown> };
    const handler = internals.handlers.get(ORCA_SERVICE_PATH)!;
    const original = handler.func;
    const serverCalls: grpc.ServerWritableStream<unknown, unknown>[] = [];
    handler.func = (call) => (serverCalls.push(call), original(call));
    const serverStreams: http2.ServerHttp2Stream[] = [];
    for (const h of internals.http2Servers.keys()) {
      h.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
        if (headers[':path'] === ORCA_SERVICE_PATH) serverStreams.push(stream);
      });
    }
    // A raw HTTP/2 client that grants no flow-control window: the replica can send it nothing.
    const session = http2.connect(`http://${address}`, { settings: { initialWindowSize: 0 } });
    session.on('error', () => undefined);
    cleanups.push(() => session.destroy());
    const request = orcaServiceDefinition().StreamCoreMetrics!.requestSerialize(EVERY_100_MS);
    const frame = Buffer.alloc(5 + request.length);
    frame.writeUInt32BE(request.length, 1);
    request.copy(frame, 5);
    const stream = session.request({ ':method': 'POST', ':path': ORCA_SERVICE_PATH, 'content-type': 'application/grpc', te: 'trailers' });
    stream.on('error', () => undefined);
    stream.end(frame);
    let closed = false;
    stream.on('close', () => (closed = true));

    let maxPendingMessages = 0;
    let maxPendingBytes = 0;
    const started = Date.now();
    while (!closed && Date.now() - started < 10_000) {
      await new Promise((r) => setTimeout(r, 50));
      maxPendingMessages = Math.max(maxPendingMessages, serverCalls[0]?.writableLength ?? 0);
      maxPendingBytes = Math.max(maxPendingBytes, serverStreams[0]?.writableLength ?? 0);
    }
    expect(serverCalls).toHaveLength(1);
    // One report at most waits for the client; the old code queued one per tick (10 a second) without end.
    expect(maxPendingMessages).toBeLessThanOrEqual(1);
    expect(maxPendingBytes).toBeLessThanOrEqual(256);
    expect(closed).toBe(true);
    // RST_STREAM ENHANCE_YOUR_CALM: grpc-js clients report it as RESOURCE_EXHAUSTED.
    expect(stream.rstCode).toBe(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    expect(replica.refusals.get('orca_stream_blocked')).toBe(1);
    // Every tick while it waited was a report skipped, and counted.
    expect(replica.refusals.get('orca_report_skipped')).toBeGreaterThan(0);
    // Its slot (maxStreams 1) is free again.
    const orca = orcaClient(address);
    const next = orca.StreamCoreMetrics(EVERY_100_MS);
    next.on('error', () => undefined);
    cleanups.push(() => next.cancel());
    expect(await firstOutcome(next)).toBe('report');
  }, 20_000);

  it('a huge report interval is capped, not turned into a 1 ms timer', async () => {
    const { address } = await replicaWith({});
    const orca = orcaClient(address);
    const call = orca.StreamCoreMetrics({ report_interval: { seconds: 10_000_000_000, nanos: 0 } });
    call.on('error', () => undefined);
    cleanups.push(() => call.cancel());
    let reports = 0;
    call.on('data', () => reports++);
    await new Promise((r) => setTimeout(r, 1000));
    expect(reports).toBe(0);
  });
});

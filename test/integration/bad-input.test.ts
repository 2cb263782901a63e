/**
 * Every message from the network can be malformed, hostile or out of order:
 * the balancer refuses it with the right status and a message that says
 * what was wrong, and keeps serving.
 */
import * as grpc from '@grpc/grpc-js';
import * as http2 from 'node:http2';
import { afterEach, describe, expect, it } from 'vitest';
import { Balancer, clientOptions } from '../../src/index';
import { controlProto } from '../../src/common/proto';
import type { BalancerMessage__Output } from '../../src/generated/rebind/v1/BalancerMessage';
import type { ControlClient } from '../../src/generated/rebind/v1/Control';
import type { AdminClient } from '../../src/generated/rebind/v1/Admin';
import type { ReplicaMessage } from '../../src/generated/rebind/v1/ReplicaMessage';
import { echoClient, startBalancer, startReplica, stopReplica, unary, waitFor } from '../support/cluster';
import { converse as converseWith } from '../support/control';

let balancer: Balancer;
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups.length = 0;
});

async function start(extra: Record<string, unknown> = {}) {
  balancer = await startBalancer([{ name: 'echo', reportIntervalMs: 200 }, { name: 'other', reportIntervalMs: 200 }], extra);
  cleanups.push(() => balancer.stop());
}

function control(): ControlClient {
  const proto = controlProto();
  const c = new proto.rebind.v1.Control(balancer.controlAddress, grpc.credentials.createInsecure()) as unknown as ControlClient;
  cleanups.push(() => c.close());
  return c;
}

function admin(): AdminClient {
  const proto = controlProto();
  const c = new proto.rebind.v1.Admin(balancer.controlAddress, grpc.credentials.createInsecure()) as unknown as AdminClient;
  cleanups.push(() => c.close());
  return c;
}

const goodHello = (over: Record<string, unknown> = {}): ReplicaMessage => ({
  hello: { protocolVersion: 1, group: 'echo', address: '127.0.0.1:6001', methods: [{ path: '/rebind.test.Echo/Unary', kind: 'UNARY' }], replicaId: '', ...over },
});

/** Opens an attachment, sends `messages`, and collects what comes back until the stream ends or `settleMs` passes. */
const converse = (messages: ReplicaMessage[], settleMs = 400) => converseWith(control(), messages, settleMs);

/** An attachment with the default hello, once the balancer has answered it. */
async function attachedStream() {
  const call = control().attach();
  const got: BalancerMessage__Output[] = [];
  call.on('data', (m: BalancerMessage__Output) => got.push(m));
  call.on('error', () => undefined);
  call.write(goodHello());
  await waitFor(() => got.length > 0);
  return call;
}

async function balancerStillServes(): Promise<void> {
  const r = await startReplica(balancer, 'A');
  try {
    const stub = echoClient(balancer.address, clientOptions());
    expect((await unary(stub, { text: 'ok' })).servedBy).toBe('A');
    stub.close();
  } finally {
    await stopReplica(r);
  }
}

describe('control stream input', () => {
  it.each([
    ['first message not hello', [{ report: { seq: 1, intervalMs: 100 } }], grpc.status.FAILED_PRECONDITION, 'load report before hello'],
    ['empty message', [{}], grpc.status.INVALID_ARGUMENT, 'has no body'],
    ['wrong protocol version', [goodHello({ protocolVersion: 9 })], grpc.status.FAILED_PRECONDITION, 'protocol_version is 9'],
    ['unknown group', [goodHello({ group: 'nope' })], grpc.status.NOT_FOUND, 'group "nope" is not configured'],
    ['malformed address', [goodHello({ address: 'my laptop' })], grpc.status.INVALID_ARGUMENT, 'hello.address'],
    ['no methods', [goodHello({ methods: [] })], grpc.status.INVALID_ARGUMENT, 'methods is empty'],
    ['bad method path', [goodHello({ methods: [{ path: '../../etc/passwd', kind: 'UNARY' }] })], grpc.status.INVALID_ARGUMENT, 'not of the form'],
    ['hello twice', [goodHello(), goodHello()], grpc.status.FAILED_PRECONDITION, 'hello sent twice'],
  ])('%s is refused with the matching status', async (_name, messages, code, fragment) => {
    await start();
    const { error } = await converse(messages as ReplicaMessage[]);
    expect(error?.code).toBe(code);
    expect(error?.details).toContain(fragment);
    await balancerStillServes();
  });

  it('a duplicate address in a group is refused with ALREADY_EXISTS', async () => {
    await start();
    const first = await attachedStream();
    const { error } = await converse([goodHello()]);
    expect(error?.code).toBe(grpc.status.ALREADY_EXISTS);
    expect(error?.details).toContain('already attached');
    first.cancel();
  });

  it('a method path served by another group is refused with FAILED_PRECONDITION', async () => {
    await start();
    const first = await attachedStream();
    const { error } = await converse([goodHello({ group: 'other', address: '127.0.0.1:6002' })]);
    expect(error?.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(error?.details).toContain('already served by group "echo"');
    first.cancel();
  });

  it('bad reports are refused with a Notice and dropped; the attachment survives', async () => {
    await start();
    const report = (seq: number, over: Record<string, unknown> = {}) => ({ report: { seq, intervalMs: 200, callsPerS: 10, ...over } });
    const call = control().attach();
    const received: BalancerMessage__Output[] = [];
    let error: grpc.ServiceError | null = null;
    call.on('data', (m: BalancerMessage__Output) => received.push(m));
    call.on('error', (e: grpc.ServiceError) => (error = e));
    const messages = [
      goodHello(),
      report(1),
      report(2, { callsPerS: Number.NaN }),
      report(3, { callsPerS: -5 }),
      report(1), // replayed
      report(4, { topClients: [{ clientId: '<script>', callsPerS: 1 }] }),
      report(5, { callsPerS: 42 }),
    ];
    // Paced below the flood limit (4 reports per 200 ms interval).
    for (const m of messages) {
      call.write(m);
      await new Promise((r) => setTimeout(r, 80));
    }
    const group = balancer.registry.groups.get('echo')!;
    await waitFor(() => [...group.members.values()][0]?.lastSeq === 5, 5000, 10, 'report 5');
    const member = [...group.members.values()][0]!;
    expect(error).toBeNull();
    const notices = received.filter((m) => m.body === 'notice').map((m) => m.notice!);
    expect(notices.map((n) => n.code)).toEqual([grpc.status.INVALID_ARGUMENT, grpc.status.INVALID_ARGUMENT, grpc.status.FAILED_PRECONDITION, grpc.status.INVALID_ARGUMENT]);
    expect(notices.map((n) => n.reportSeq)).toEqual([2, 3, 1, 4]);
    expect(notices[0]!.message).toContain('calls_per_s is NaN');
    expect(notices[2]!.message).toContain('out of order');
    // Only the good reports (1 and 5) were applied.
    expect(member.reports).toBe(2);
    expect(member.rawLoad).toBe(42);
    call.cancel();
  });

  it('a report with a known field in the wrong wire type ends the attachment with INTERNAL and is not applied', async () => {
    // has_custom (LoadReport field 9, a bool) sent length-delimited: protobufjs read the length byte as the
    // bool and applied the report; the control stream's own decoder refuses it as malformed.
    await start();
    const proto = controlProto();
    const raw = new grpc.Client(balancer.controlAddress, grpc.credentials.createInsecure());
    cleanups.push(() => raw.close());
    const call = raw.makeBidiStreamRequest('/rebind.v1.Control/Attach', (b: Buffer) => b, (b: Buffer) => b);
    const ended = new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
    call.on('data', () => undefined);
    call.write(proto.rebind.v1.Control.service.Attach.requestSerialize(goodHello() as never));
    const group = balancer.registry.groups.get('echo')!;
    await waitFor(() => group.members.size === 1, 5000, 10, 'attached');
    const member = [...group.members.values()][0]!;
    // report { seq: 1, interval_ms: 200, has_custom: <length-delimited, 0 bytes> }
    const report = Buffer.from([0x08, 0x01, 0x10, 0xc8, 0x01, 0x4a, 0x00]);
    call.write(Buffer.concat([Buffer.from([0x12, report.length]), report]));
    const error = await ended;
    expect(error.code).toBe(grpc.status.INTERNAL);
    expect(member.reports).toBe(0);
    await waitFor(() => group.members.size === 0, 5000, 10, 'detached');
  });

  it('an oversized control message is refused with RESOURCE_EXHAUSTED', async () => {
    await start({ limits: { maxControlMessageBytes: 4096 } });
    const methods = Array.from({ length: 200 }, (_, i) => ({ path: `/rebind.test.Echo/Method${i}`, kind: 'UNARY' as const }));
    const { error } = await converse([goodHello({ methods })]);
    expect(error?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(error?.details).toMatch(/larger than max|exceeds|too large/i);
    await balancerStillServes();
  });

  it('a hello with more methods than limits.maxMethodsPerReplica is refused with RESOURCE_EXHAUSTED', async () => {
    await start({ limits: { maxMethodsPerReplica: 4 } }); // Echo has 4 methods
    const methods = Array.from({ length: 5 }, (_, i) => ({ path: `/rebind.test.Echo/Method${i}`, kind: 'UNARY' as const }));
    const { error } = await converse([goodHello({ methods })]);
    expect(error?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(error?.details).toContain('5 methods');
    await balancerStillServes();
  });

  it('a report flood is refused with RESOURCE_EXHAUSTED notices, at most maxReportsPerInterval of them per interval', async () => {
    await start();
    const flood = Array.from({ length: 12 }, (_, i) => ({ report: { seq: i + 1, intervalMs: 200, callsPerS: 1 } }));
    const { received } = await converse([goodHello(), ...flood]);
    const notices = received.filter((m) => m.body === 'notice').map((m) => m.notice!);
    // 4 reports accepted, 8 refused as a flood: 4 of them told, 4 only counted.
    expect(notices).toHaveLength(4);
    expect(notices.every((n) => n.code === grpc.status.RESOURCE_EXHAUSTED)).toBe(true);
    expect(balancer.refusals.get('report_flood')).toBe(8);
    expect(balancer.refusals.get('notice_dropped')).toBe(4);
  });
});

describe('admin input', () => {
  const call = <T>(fn: (cb: (e: grpc.ServiceError | null, v?: T) => void) => void) =>
    new Promise<{ error: grpc.ServiceError | null; value?: T }>((resolve) => fn((error, value) => resolve({ error, value })));

  it('refuses unknown groups, strategies, parameters and granularities', async () => {
    await start();
    const a = admin();
    const unknownGroup = await call((cb) => a.setStrategy({ group: 'ghost', strategy: 'round_robin' }, cb));
    expect(unknownGroup.error?.code).toBe(grpc.status.NOT_FOUND);
    const badStrategy = await call((cb) => a.setStrategy({ group: 'echo', strategy: 'yolo' }, cb));
    expect(badStrategy.error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(badStrategy.error?.details).toContain('accepted: round_robin, random, least_loaded, load_minimum, load_average, minimum_dispersion, p2c');
    const badJson = await call((cb) => a.setStrategy({ group: 'echo', strategy: 'minimum_dispersion', paramsJson: '{tolerance' }, cb));
    expect(badJson.error?.details).toContain('params_json is not valid JSON');
    const badParam = await call((cb) => a.setStrategy({ group: 'echo', strategy: 'minimum_dispersion', paramsJson: '{"tolerance": "lots"}' }, cb));
    expect(badParam.error?.details).toContain('params.tolerance is "lots"');
    const badGranularity = await call((cb) => a.setGranularity({ group: 'echo', granularity: 'hourly' }, cb));
    expect(badGranularity.error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    const ok = await call((cb) => a.setGranularity({ group: 'echo', granularity: 'per-request' }, cb));
    expect(ok.error).toBeNull();
    expect(balancer.registry.groups.get('echo')!.granularity).toBe('per-request');
  });
});

describe('data port input', () => {
  it('answers an unknown method with UNIMPLEMENTED', async () => {
    await start();
    const stub = echoClient(balancer.address, clientOptions());
    const err = (await unary(stub, { text: 'x' }).catch((e) => e)) as grpc.ServiceError;
    expect(err.code).toBe(grpc.status.UNIMPLEMENTED);
    expect(err.details).toContain('no replica group serves /rebind.test.Echo/Unary');
    stub.close();
  });

  it('answers non-gRPC HTTP/2 requests with 415/405 and keeps going', async () => {
    await start();
    const session = http2.connect(`http://${balancer.address}`);
    cleanups.push(() => void session.destroy());
    const statusOf = (headers: http2.OutgoingHttpHeaders) =>
      new Promise<number>((resolve, reject) => {
        const req = session.request(headers);
        req.on('response', (h) => resolve(Number(h[':status'])));
        req.on('error', reject);
        req.end();
      });
    expect(await statusOf({ ':method': 'POST', ':path': '/x.Y/Z', 'content-type': 'text/html' })).toBe(415);
    expect(await statusOf({ ':method': 'GET', ':path': '/' })).toBe(405);
    await balancerStillServes();
  });

  it('answers UNAVAILABLE when the group serving a method has no replica left', async () => {
    await start();
    const r = await startReplica(balancer, 'A');
    await stopReplica(r);
    await waitFor(() => balancer.registry.groups.get('echo')!.members.size === 0);
    const stub = echoClient(balancer.address);
    const err = (await unary(stub, { text: 'x' }).catch((e) => e)) as grpc.ServiceError;
    stub.close();
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
    expect(err.details).toContain('group "echo" has no replica available for /rebind.test.Echo/Unary');
  });
});

/**
 * Hardening of the control plane (issue 11): each test here reproduces a
 * defect found by trying rebind as a hostile party or an unlucky operator,
 * and failed on the code before its fix (9d54503).
 */
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { attach, Balancer, clientOptions } from '../../src/index';
import { startEchoServer } from '../support/echo';
import { freePort } from '../../bench/lib/common';
import { controlProto } from '../../src/common/proto';
import type { ControlClient } from '../../src/generated/rebind/v1/Control';
import type { ReplicaMessage } from '../../src/generated/rebind/v1/ReplicaMessage';
import { echoClient, sleep, startBalancer, startReplica, stopReplica, unary, waitFor } from '../support/cluster';
import { converse as converseWith } from '../support/control';

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups.length = 0;
});

function controlClient(balancer: Balancer): ControlClient {
  const proto = controlProto();
  const c = new proto.rebind.v1.Control(balancer.controlAddress, grpc.credentials.createInsecure()) as unknown as ControlClient;
  cleanups.push(() => c.close());
  return c;
}

/** An attachment with these messages, kept open after `settleMs` (see ../support/control.ts). */
const converse = (balancer: Balancer, messages: ReplicaMessage[], settleMs = 400) => converseWith(controlClient(balancer), messages, settleMs, { keepOpen: true });

const hello = (group: string, address: string, paths: string[], over: Record<string, unknown> = {}): ReplicaMessage => ({
  hello: { protocolVersion: 1, group, address, methods: paths.map((path) => ({ path, kind: 'UNARY' })), replicaId: '', ...over },
});

describe('a recall does not survive a re-attachment (item 1)', () => {
  it('after a run-time switch to per-request and a balancer restart on an on-demand file, clients are served directly again', async () => {
    const port = await freePort();
    const control = await freePort();
    const config = { listen: `127.0.0.1:${port}`, controlListen: `127.0.0.1:${control}`, adminListen: null, groups: [{ name: 'echo', granularity: 'on-demand', reportIntervalMs: 200 }] };
    let balancer = await Balancer.start({ config });
    const r = await startReplica(balancer, 'A');
    cleanups.push(() => stopReplica(r));
    const stub = echoClient(balancer.address, clientOptions());
    cleanups.push(() => stub.close());
    expect((await unary(stub, { text: 'bind' })).servedBy).toBe('A');
    // Run-time switch: the replica is told to recall its direct clients.
    balancer.admin.setGranularity('echo', 'per-request');
    await waitFor(() => r.replica.forwards.recallAll, 5000, 10, 'the recall to reach the replica');
    expect((await unary(stub, { text: 'proxied' })).servedBy).toBe('A');
    // The balancer restarts from its file, which still says on-demand.
    await balancer.stop();
    balancer = await Balancer.start({ config });
    cleanups.push(() => balancer.stop());
    await waitFor(() => r.replica.attachments === 2, 10_000, 10, 'the replica to re-attach');
    // The attachment says the granularity: no recall any more.
    expect(r.replica.forwards.recallAll).toBe(false);
    const before = balancer.registry.groups.get('echo')!.counters.proxiedCalls;
    for (let i = 0; i < 5; i++) {
      const reply = await unary(stub, { text: `after${i}` }, new grpc.Metadata(), { deadline: Date.now() + 5000 });
      expect(reply.servedBy).toBe('A');
    }
    // Served directly (bound), not proxied: the recall is over.
    expect(balancer.registry.groups.get('echo')!.counters.proxiedCalls).toBe(before);
  });

  it('a replica attaching to a per-request group learns the recall from its Attached message', async () => {
    const balancer = await startBalancer([{ name: 'echo', granularity: 'per-request', reportIntervalMs: 200 }]);
    cleanups.push(() => balancer.stop());
    const { received } = await converse(balancer, [hello('echo', '127.0.0.1:6001', ['/rebind.test.Echo/Unary'])], 300);
    expect(received[0]?.body).toBe('attached');
    expect(received[0]!.attached!.granularity).toBe('per-request');
    expect(received[0]!.attached!.recallAll).toBe(true);
  });
});

const UNARY = '/rebind.test.Echo/Unary';

describe('a method path belongs to its group while any member serves it (item 2)', () => {
  async function balancerWithGroups(extra: Record<string, unknown> = {}) {
    // Long report intervals: no report comes to undo a state the test sets.
    const balancer = await startBalancer([{ name: 'echo', reportIntervalMs: 5000 }, { name: 'other', reportIntervalMs: 5000 }], extra);
    cleanups.push(() => balancer.stop());
    return balancer;
  }

  for (const state of ['SUSPECT', 'DRAINING'] as const) {
    it(`is not taken over by another group while the owner's only member is ${state}`, async () => {
      const balancer = await balancerWithGroups();
      const r = await startReplica(balancer, 'A');
      cleanups.push(() => stopReplica(r));
      const echo = balancer.registry.groups.get('echo')!;
      const member = [...echo.members.values()][0]!;
      await waitFor(() => member.reported, 5000, 10, 'the first report');
      if (state === 'SUSPECT') echo.suspect(member);
      else echo.applyReport(member, { ...member.latest!, seq: member.lastSeq + 1, draining: true }, Date.now());
      expect(member.state).toBe(state);
      const { error, received } = await converse(balancer, [hello('other', '127.0.0.1:6002', [UNARY])]);
      expect(received).toEqual([]);
      expect(error?.code).toBe(grpc.status.FAILED_PRECONDITION);
      expect(error?.details).toContain(`method ${UNARY} is already served by group "echo"`);
      // Nothing changed: the path still routes to the owner, which has its member.
      expect(balancer.registry.route(UNARY)).toBe(echo);
      expect(balancer.registry.groups.get('other')!.members.size).toBe(0);
      // And the owner's replica can attach again after a restart.
      await stopReplica(r);
      const again = await startReplica(balancer, 'A2');
      cleanups.push(() => stopReplica(again));
      expect(balancer.registry.route(UNARY)).toBe(echo);
    });
  }

  it("a refused Hello creates no group, and paths a member advertised are forgotten when it leaves", async () => {
    const balancer = await balancerWithGroups({ autoCreateGroups: true });
    const r = await startReplica(balancer, 'A');
    cleanups.push(() => stopReplica(r));
    const groupsBefore = balancer.registry.groups.size;
    for (let i = 0; i < 20; i++) {
      const { error } = await converse(balancer, [hello(`intruder-${i}`, `127.0.0.1:${7000 + i}`, [UNARY])], 300);
      expect(error?.code).toBe(grpc.status.FAILED_PRECONDITION);
    }
    expect(balancer.registry.groups.size).toBe(groupsBefore);
    expect(balancer.refusals.get('attach_refused')).toBe(20);
    // A member advertising 500 paths of its own, then leaving: its paths go with it.
    const ownedBefore = balancer.registry.ownedPaths;
    const paths = Array.from({ length: 500 }, (_, i) => `/junk.Service${i}/Method${'x'.repeat(200)}`);
    const { call, received } = await converse(balancer, [hello('other', '127.0.0.1:6003', paths)], 300);
    expect(received[0]?.body).toBe('attached');
    expect(balancer.registry.ownedPaths).toBe(ownedBefore + 500);
    call.cancel();
    await waitFor(() => balancer.registry.ownedPaths === ownedBefore, 5000, 10, 'the paths to be released');
  });

  it('auto-created groups are capped, counted, and removed once idle', async () => {
    const balancer = await startBalancer([], {
      autoCreateGroups: true,
      limits: { maxAutoGroups: 3, autoGroupIdleMs: 200 },
    });
    cleanups.push(() => balancer.stop());
    const calls = [];
    for (let i = 0; i < 3; i++) {
      const { call, received } = await converse(balancer, [hello(`auto-${i}`, `127.0.0.1:${7100 + i}`, [`/auto.S${i}/M`])], 200);
      expect(received[0]?.body).toBe('attached');
      calls.push(call);
    }
    const { error } = await converse(balancer, [hello('auto-3', '127.0.0.1:7103', ['/auto.S3/M'])], 300);
    expect(error?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(error?.details).toContain('maxAutoGroups');
    expect(balancer.refusals.get('auto_group_limit')).toBe(1);
    expect(balancer.registry.groups.size).toBe(3);
    for (const call of calls) call.cancel();
    await waitFor(() => balancer.registry.groups.size === 0, 5000, 20, 'idle auto-created groups to be removed');
    // Room again.
    const { received } = await converse(balancer, [hello('auto-3', '127.0.0.1:7103', ['/auto.S3/M'])], 300);
    expect(received[0]?.body).toBe('attached');
  });
});

describe('a second attachment for a live address is refused, not a takeover', () => {
  it('the same replica id without the previous attachment’s resume secret gets ALREADY_EXISTS; with it, it replaces the old one', async () => {
    const balancer = await startBalancer([{ name: 'echo', reportIntervalMs: 200 }]);
    cleanups.push(() => balancer.stop());
    const first = await converse(balancer, [hello('echo', '127.0.0.1:6001', [UNARY], { replicaId: 'public-id' })], 300);
    expect(first.received[0]?.body).toBe('attached');
    const secret = first.received[0]!.attached!.resumeSecret;
    expect(secret.length).toBeGreaterThanOrEqual(16);
    // An impostor knows the replica id (it is in every affinity token) but not the secret.
    const impostor = await converse(balancer, [hello('echo', '127.0.0.1:6001', [UNARY], { replicaId: 'public-id' })], 300);
    expect(impostor.error?.code).toBe(grpc.status.ALREADY_EXISTS);
    const impostor2 = await converse(balancer, [hello('echo', '127.0.0.1:6001', [UNARY], { replicaId: 'public-id', resumeSecret: 'x'.repeat(secret.length) })], 300);
    expect(impostor2.error?.code).toBe(grpc.status.ALREADY_EXISTS);
    expect(first.ended).toBe(false);
    // The replica itself, re-attaching with its secret, replaces its stale attachment.
    const again = await converse(balancer, [hello('echo', '127.0.0.1:6001', [UNARY], { replicaId: 'public-id', resumeSecret: secret })], 300);
    expect(again.received[0]?.body).toBe('attached');
    await waitFor(() => first.ended, 2000, 10, 'the old attachment to be ended');
    expect(first.error?.code).toBe(grpc.status.ABORTED);
    expect(balancer.registry.groups.get('echo')!.members.size).toBe(1);
  });

  it('a real replica whose control stream restarts re-attaches at once with its secret', async () => {
    const balancer = await startBalancer([{ name: 'echo', reportIntervalMs: 200 }]);
    cleanups.push(() => balancer.stop());
    const r = await startReplica(balancer, 'A');
    cleanups.push(() => stopReplica(r));
    // The balancer drops the stream without noticing the member is gone (as if the
    // stream died on a path the balancer has not seen fail yet): the member stays.
    const member = [...balancer.registry.groups.get('echo')!.members.values()][0]!;
    member.sink.close(grpc.status.UNAVAILABLE, 'test: stream cut');
    await waitFor(() => r.replica.attachments === 2, 5000, 10, 'the replica to re-attach');
    expect(balancer.registry.groups.get('echo')!.members.size).toBe(1);
  });
});

describe('what a party on the control port can make the balancer hold is bounded', () => {
  it('a replica flooding bad reports and never reading gets a bounded number of notices, then its attachment is closed as a flood', async () => {
    const balancer = await startBalancer([{ name: 'echo', reportIntervalMs: 1000 }]);
    cleanups.push(() => balancer.stop());
    const call = controlClient(balancer).attach();
    let status: grpc.StatusObject | null = null;
    call.on('status', (s: grpc.StatusObject) => (status = s));
    call.on('error', () => undefined);
    call.pause(); // never reads what the balancer sends
    call.write(hello('echo', '127.0.0.1:6001', [UNARY]));
    for (let seq = 1; seq <= 5000; seq++) call.write({ report: { seq, intervalMs: 1000, callsPerS: Number.NaN } });
    await waitFor(() => status !== null, 10_000, 10, 'the attachment to be closed');
    expect(status!.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(status!.details).toContain('refused messages');
    expect(balancer.refusals.get('control_flood')).toBe(1);
    // Notices were sent for the first few refusals only.
    const refused = (balancer.refusals.get('bad_report') ?? 0) + (balancer.refusals.get('report_flood') ?? 0);
    expect(refused).toBe(balancer.config.limits.maxRefusedPerInterval + 1);
    const noticed = refused - 1 - (balancer.refusals.get('notice_dropped') ?? 0);
    expect(noticed).toBeGreaterThan(0);
    expect(noticed).toBeLessThanOrEqual(balancer.config.limits.maxReportsPerInterval);
    expect(balancer.registry.groups.get('echo')!.members.size).toBe(0);
  });

  it('an attachment that never says hello is closed after limits.helloTimeoutMs, and streams waiting for a hello are capped', async () => {
    const balancer = await startBalancer([{ name: 'echo' }], { limits: { helloTimeoutMs: 300, maxPendingAttachments: 2 } });
    cleanups.push(() => balancer.stop());
    const statuses: grpc.StatusObject[] = [];
    const open = () => {
      const call = controlClient(balancer).attach();
      call.on('status', (s: grpc.StatusObject) => statuses.push(s));
      call.on('error', () => undefined);
      call.on('data', () => undefined);
      return call;
    };
    open();
    open();
    await sleep(50);
    open(); // a third one while two wait for their hello
    await waitFor(() => statuses.length === 3, 5000, 10, 'all three streams to be ended');
    const codes = statuses.map((s) => s.code).sort();
    expect(codes).toEqual([grpc.status.RESOURCE_EXHAUSTED, grpc.status.DEADLINE_EXCEEDED, grpc.status.DEADLINE_EXCEEDED].sort());
    expect(balancer.refusals.get('attach_pending_limit')).toBe(1);
    expect(balancer.refusals.get('hello_timeout')).toBe(2);
  });
});

describe('refused input does not become a log flood', () => {
  it('a replica sending a thousand bad reports produces a few warn lines, not a thousand', async () => {
    const lines: { msg: string; reason?: string; suppressed?: number }[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    const balancer = await Balancer.start({
      config: { listen: '127.0.0.1:0', controlListen: '127.0.0.1:0', adminListen: null, groups: [{ name: 'echo', reportIntervalMs: 60_000 }], limits: { maxRefusedPerInterval: 5000 } },
      logger,
      processMetrics: false,
    });
    cleanups.push(() => balancer.stop());
    const reports: ReplicaMessage[] = Array.from({ length: 1000 }, (_, i) => ({ report: { seq: i + 1, intervalMs: 1000, callsPerS: -1 } }));
    await converse(balancer, [hello('echo', '127.0.0.1:6001', [UNARY]), ...reports], 1000);
    await waitFor(() => (balancer.refusals.get('bad_report') ?? 0) + (balancer.refusals.get('report_flood') ?? 0) === 1000, 5000, 10, 'every report refused');
    const refusedLines = lines.filter((l) => l.msg.startsWith('refused:'));
    // One line per reason per second at most (bad_report, report_flood), each saying how many it stands for.
    expect(refusedLines.length).toBeGreaterThan(0);
    expect(refusedLines.length).toBeLessThanOrEqual(4);
  });
});

describe('a replica bounds what its balancer tells it', () => {
  it('an absurd report interval in Attached is clamped (a 32-bit timer overflow would report every millisecond)', async () => {
    // A fake balancer: answers the hello with an Attached naming a report interval of 2^32-1 ms.
    let reports = 0;
    const fake = new grpc.Server();
    fake.addService(controlProto().rebind.v1.Control.service, {
      Attach: (call: grpc.ServerDuplexStream<{ body: string }, unknown>) => {
        call.on('data', (m: { body: string }) => {
          if (m.body === 'hello') call.write({ attached: { memberId: 'm1', reportIntervalMs: 4_294_967_295, topClients: 4_294_967_295, granularity: 'on-demand' } });
          else if (m.body === 'report') reports++;
        });
        call.on('error', () => undefined);
        call.on('end', () => call.end());
      },
    } as grpc.UntypedServiceImplementation);
    const port = await new Promise<number>((res, rej) => fake.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    cleanups.push(() => fake.forceShutdown());
    const { server, address } = await startEchoServer('A');
    cleanups.push(() => server.forceShutdown());
    const replica = await attach(server, { balancer: `127.0.0.1:${port}`, group: 'echo', address });
    cleanups.push(() => replica.detach());
    await sleep(500);
    // The report sent at once on attaching, and no more within half a second.
    expect(reports).toBe(1);
  });
});

/**
 * Affinity: calls whose state lives on one replica reach that replica,
 * whatever the group's granularity and strategy, and fail clearly when it
 * is gone.
 */
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { attach, Balancer, clientOptions } from '../../src/index';
import { AFFINITY_HEADER } from '../../src/common/wire';
import { echoClient, startBalancer, startReplica, stopReplica, unary, waitFor, type TestReplica } from '../support/cluster';
import { echoImplementation, EchoService, startEchoServer } from '../support/echo';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups.length = 0;
});

async function setup(granularity = 'per-request'): Promise<{ balancer: Balancer; a: TestReplica; b: TestReplica }> {
  const balancer = await startBalancer([{ name: 'echo', granularity, strategy: 'round_robin', reportIntervalMs: 200 }]);
  cleanups.push(() => balancer.stop());
  const a = await startReplica(balancer, 'A');
  const b = await startReplica(balancer, 'B');
  cleanups.push(() => stopReplica(a), () => stopReplica(b));
  return { balancer, a, b };
}

function stub(address: string, options: grpc.ChannelOptions = {}) {
  const c = echoClient(address, options);
  cleanups.push(() => c.close());
  return c;
}

describe('affinity', () => {
  it("a pinned channel's calls all reach the owner, even in a per-request round-robin group", async () => {
    const { balancer, a } = await setup('per-request');
    const pinned = stub(balancer.address, clientOptions({ affinity: a.replica.affinity }));
    const served = [];
    for (let i = 0; i < 6; i++) served.push((await unary(pinned, { text: `s${i}` })).servedBy);
    expect(served).toEqual(['A', 'A', 'A', 'A', 'A', 'A']);
    // Direct to the owner: the balancer saw none of them.
    expect(balancer.registry.groups.get('echo')!.counters.proxiedCalls).toBe(0);
  });

  it('a plain client sending the affinity header is proxied to the owner', async () => {
    const { balancer, b } = await setup('per-request');
    const plain = stub(balancer.address);
    const md = new grpc.Metadata();
    md.set(AFFINITY_HEADER, b.replica.affinity);
    for (let i = 0; i < 4; i++) expect((await unary(plain, { text: 'x' }, md)).servedBy).toBe('B');
  });

  it('fails with FAILED_PRECONDITION naming the owner once it is gone', async () => {
    const { balancer, a } = await setup('on-demand');
    const pinned = stub(balancer.address, clientOptions({ affinity: a.replica.affinity }));
    expect((await unary(pinned, { text: 'before' })).servedBy).toBe('A');
    await stopReplica(a);
    await waitFor(() => balancer.registry.groups.get('echo')!.members.size === 1);
    const err = (await unary(pinned, { text: 'after' }, new grpc.Metadata(), { deadline: Date.now() + 5000 }).catch((e) => e)) as grpc.ServiceError;
    expect(err.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(err.details).toContain(`the replica that owns this call (${a.address}`);
    expect(err.details).toContain('is gone');
  });

  it('a replica refuses a call pinned to another replica, or to its own earlier incarnation', async () => {
    const { a, b } = await setup();
    const direct = stub(b.address);
    const md = new grpc.Metadata();
    md.set(AFFINITY_HEADER, a.replica.affinity);
    const misrouted = (await unary(direct, { text: 'x' }, md).catch((e) => e)) as grpc.ServiceError;
    expect(misrouted.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(misrouted.details).toContain(`pinned to the replica at ${a.address}, not to this one (${b.address})`);
    const old = new grpc.Metadata();
    old.set(AFFINITY_HEADER, `${b.address}/an-older-replica-id`);
    const stale = (await unary(direct, { text: 'x' }, old).catch((e) => e)) as grpc.ServiceError;
    expect(stale.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(stale.details).toContain('earlier incarnation');
    const bad = new grpc.Metadata();
    bad.set(AFFINITY_HEADER, 'garbage');
    expect(((await unary(direct, { text: 'x' }, bad).catch((e) => e)) as grpc.ServiceError).code).toBe(grpc.status.INVALID_ARGUMENT);
  });

  it('the balancer refuses a malformed or stale token with a clear status', async () => {
    const { balancer, a } = await setup();
    const plain = stub(balancer.address);
    const bad = new grpc.Metadata();
    bad.set(AFFINITY_HEADER, 'no-slash');
    expect(((await unary(plain, { text: 'x' }, bad).catch((e) => e)) as grpc.ServiceError).code).toBe(grpc.status.INVALID_ARGUMENT);
    const stale = new grpc.Metadata();
    stale.set(AFFINITY_HEADER, `${a.address}/someone-else`);
    const err = (await unary(plain, { text: 'x' }, stale).catch((e) => e)) as grpc.ServiceError;
    expect(err.code).toBe(grpc.status.FAILED_PRECONDITION);
  });

  it('a replica restarted at the same address does not serve the old incarnation\'s calls', async () => {
    const balancer = await startBalancer([{ name: 'echo', reportIntervalMs: 200 }]);
    cleanups.push(() => balancer.stop());
    const first = await startEchoServer('first', echoImplementation('first'));
    const r1 = await attach(first.server, { balancer: balancer.controlAddress, group: 'echo', address: first.address });
    const token = r1.affinity;
    await r1.detach();
    first.server.forceShutdown();
    const port = Number(first.address.split(':')[1]);
    const second = new grpc.Server();
    second.addService(EchoService.service, echoImplementation('second'));
    await new Promise<void>((resolve, reject) => second.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())));
    cleanups.push(() => second.forceShutdown());
    const r2 = await attach(second, { balancer: balancer.controlAddress, group: 'echo', address: first.address });
    cleanups.push(() => r2.detach());
    const pinned = stub(balancer.address, clientOptions({ affinity: token }));
    const err = (await unary(pinned, { text: 'x' }).catch((e) => e)) as grpc.ServiceError;
    expect(err.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(err.details).toContain('earlier incarnation');
  });
});

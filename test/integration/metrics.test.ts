/**
 * The load metric a group balances on: every replica measures all of them;
 * the group's `metric` picks which one is load.
 */
import { availableParallelism } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { attach, Balancer, clientOptions } from '../../src/index';
import { echoClient, startBalancer, unary, waitFor } from '../support/cluster';
import { echoImplementation, startEchoServer } from '../support/echo';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups.length = 0;
});

async function oneReplica(metric: string, loadCallback?: () => number): Promise<{ balancer: Balancer; address: string }> {
  const balancer = await startBalancer([{ name: 'echo', metric, reportIntervalMs: 100, dampening: 0 }]);
  cleanups.push(() => balancer.stop());
  const { server, address } = await startEchoServer('A', echoImplementation('A'));
  const replica = await attach(server, { balancer: balancer.controlAddress, group: 'echo', address, ...(loadCallback ? { loadCallback } : {}) });
  cleanups.push(async () => {
    await replica.detach();
    server.forceShutdown();
  });
  return { balancer, address };
}

const member = (balancer: Balancer) => [...balancer.registry.groups.get('echo')!.members.values()][0]!;

describe('load metrics', () => {
  it('custom: the load is what the replica\'s loadCallback returns', async () => {
    let value = 42;
    const { balancer } = await oneReplica('custom', () => value);
    await waitFor(() => member(balancer).reports >= 2 && member(balancer).rawLoad === 42, 5000);
    value = 7.5;
    await waitFor(() => member(balancer).rawLoad === 7.5, 5000, 20, 'the new custom load');
    expect(member(balancer).latest!.hasCustom).toBe(true);
  });

  it('in_flight: a slow call in progress is the load', async () => {
    const { balancer } = await oneReplica('in_flight');
    const stub = echoClient(balancer.address, clientOptions());
    cleanups.push(() => stub.close());
    const slow = unary(stub, { text: 'slow', delayMs: 1500 });
    await waitFor(() => member(balancer).rawLoad === 1, 5000, 20, 'one call in flight');
    await slow;
    await waitFor(() => member(balancer).rawLoad === 0, 5000, 20, 'no call in flight');
  });

  it('calls_per_s, event_loop_utilization and cpu are reported in their ranges', async () => {
    const { balancer } = await oneReplica('event_loop_utilization');
    const stub = echoClient(balancer.address, clientOptions());
    cleanups.push(() => stub.close());
    let calling = true;
    const loop = (async () => {
      while (calling) await unary(stub, { text: 'tick' });
    })();
    await waitFor(() => (member(balancer).latest?.callsPerS ?? 0) > 10, 5000, 10, 'a report with calls');
    calling = false;
    await loop;
    const report = member(balancer).latest!;
    // The replica served > 10 calls/s in that interval: its event loop and CPU were busy.
    expect(report.eventLoopUtilization).toBeGreaterThan(0);
    expect(report.eventLoopUtilization).toBeLessThanOrEqual(1);
    expect(report.cpuCores).toBeGreaterThan(0);
    expect(report.cpuCores).toBeLessThanOrEqual(availableParallelism());
    expect(member(balancer).rawLoad).toBe(report.eventLoopUtilization);
  });
});

/**
 * Liveness against the balancer's own lag, over real control streams on
 * loopback: a balancer whose event loop is blocked for longer than
 * missedReports intervals keeps the members whose reports came meanwhile
 * (after the block its liveness timer fires before it reads the sockets),
 * and still removes one that is really silent.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Balancer } from '../../src/index';
import { startBalancer, startReplica, stopReplica, waitFor, type TestReplica } from '../support/cluster';

const INTERVAL_MS = 200;
const MISSED = 3;

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups.length = 0;
});

async function cluster(): Promise<{ balancer: Balancer; a: TestReplica; removed: string[] }> {
  const balancer = await startBalancer([{ name: 'echo', reportIntervalMs: INTERVAL_MS, missedReports: MISSED }]);
  cleanups.push(() => balancer.stop());
  const a = await startReplica(balancer, 'a');
  cleanups.push(() => stopReplica(a));
  const removed: string[] = [];
  balancer.registry.listen({ memberRemoved: (_g, m, reason) => removed.push(`${m.address}: ${reason}`) });
  const group = balancer.registry.groups.get('echo')!;
  await waitFor(() => [...group.members.values()].some((m) => m.reports >= 2), 10_000, 20, 'two reports');
  return { balancer, a, removed };
}

/** Blocks this process's event loop (the balancer's and the replica's) for `ms`. */
function blockLoop(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // busy: nothing else runs
  }
}

describe('liveness and the balancer lag', () => {
  it('a balancer blocked for 5 report intervals (past missedReports 3) keeps its member', async () => {
    const { balancer, removed } = await cluster();
    const group = balancer.registry.groups.get('echo')!;
    const member = [...group.members.values()][0]!;
    const reportsBefore = member.reports;
    blockLoop(5 * INTERVAL_MS);
    // Several intervals of the loop running again: reports read, checks on time.
    await new Promise((r) => setTimeout(r, 4 * INTERVAL_MS));
    expect(removed).toEqual([]);
    expect(group.members.get(member.id)).toBe(member);
    expect(member.reports).toBeGreaterThan(reportsBefore);
  }, 20_000);

  it('a replica that stops reporting is still removed after missedReports intervals', async () => {
    const { balancer, a, removed } = await cluster();
    const group = balancer.registry.groups.get('echo')!;
    const member = [...group.members.values()][0]!;
    // The replica's process hangs as far as the balancer can tell: no more reports, stream open.
    const apply = group.applyReport.bind(group);
    group.applyReport = (m, report, nowMs) => (m === member ? undefined : apply(m, report, nowMs));
    const silentSince = Date.now();
    await waitFor(() => removed.length > 0, 10_000, 10, 'the silent member removed');
    const tookMs = Date.now() - silentSince;
    expect(removed[0]).toContain(`${a.address}: no load report`);
    // missedReports intervals from the last report read (at most one interval before silentSince), plus a check period and generous timer slack (a busy machine).
    expect(tookMs).toBeGreaterThan((MISSED - 1) * INTERVAL_MS);
    expect(tookMs).toBeLessThan((MISSED + 5) * INTERVAL_MS);
  }, 20_000);
});

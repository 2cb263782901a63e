/**
 * Several balancers on one real etcd: exactly one planning leader per group,
 * hand-off when the leader stops (lease revoked) and when it is SIGKILLed (a
 * child process: the lease expires), and the new leader is the one that
 * plans the next imbalance while a non-leader with the same imbalance sends
 * nothing. Status (Admin ListGroups, /api/state), /healthz and metrics show
 * the balancers, the leader per group and etcd's health.
 */
import { describe, expect, it } from 'vitest';
import type { Balancer } from '../../src/index';
import { adminCall, adminClient } from '../../src/cli/admin-client';
import { formatHa } from '../../src/cli/status-command';
import type { ListGroupsResponse__Output } from '../../src/generated/rebind/v1/ListGroupsResponse';
import { waitFor } from '../support/cluster';
import { freshPrefix, haSection, imbalance, leadersOf, startChildBalancer, startHaBalancer, type ChildBalancer, useEtcd } from '../support/ha-coord';

const INTERVAL_MS = 500;
const TTL_MS = 2000;
const GROUPS = [
  { name: 'echo', granularity: 'on-demand', strategy: 'minimum_dispersion', reportIntervalMs: INTERVAL_MS, holdMs: 0 },
  { name: 'stock/Quotes', granularity: 'per-request', reportIntervalMs: INTERVAL_MS },
];

const { etcd: etcdProcess, cleanups } = useEtcd();

async function balancers(n: number, prefix: string): Promise<Balancer[]> {
  const out: Balancer[] = [];
  for (let i = 0; i < n; i++) {
    const b = await startHaBalancer(etcdProcess().endpoint, prefix, GROUPS, { balancerId: `b${i}` });
    cleanups.push(() => b.stop());
    out.push(b);
  }
  return out;
}

describe('HA: leader election among balancers', () => {
  it('one leader per group; status, /api/state, /healthz and metrics show it; stop() hands off within 2 report intervals', async () => {
    const bs = await balancers(3, freshPrefix());
    await waitFor(() => GROUPS.every((g) => leadersOf(bs, g.name).length === 1), 10_000, 20, 'one leader per group');
    await waitFor(() => bs.every((b) => b.coordinator!.balancers().length === 3), 5000, 20, 'three balancers registered');
    const leader = leadersOf(bs, 'echo')[0]!;
    const follower = bs.find((b) => b !== leader)!;
    // The Admin API (what `rebind status` prints).
    const client = adminClient(follower.controlAddress);
    cleanups.push(() => client.close());
    const reply = await adminCall<ListGroupsResponse__Output>(client, follower.controlAddress, 'ListGroups', { group: '', bindings: 0 });
    expect(reply.ha).toMatchObject({ balancerId: follower.coordinator!.id, etcdUp: true, etcdDownSinceUnixMs: 0 });
    expect(reply.ha!.balancers.map((b) => b.id)).toEqual(['b0', 'b1', 'b2']);
    expect(reply.ha!.balancers.find((b) => b.id === leader.coordinator!.id)).toMatchObject({ controlAddress: leader.controlAddress, address: leader.address });
    expect(reply.ha!.leaders.find((l) => l.group === 'echo')).toEqual({ group: 'echo', balancerId: leader.coordinator!.id, leading: false });
    const text = formatHa(reply.ha!, Date.now()).join('\n');
    expect(text).toContain(`ha: balancer ${follower.coordinator!.id}, etcd up, 3 balancers`);
    expect(text).toContain(`leader of echo: ${leader.coordinator!.id}`);
    // Admin HTTP.
    const state = (await (await fetch(`http://${leader.adminAddress}/api/state`)).json()) as { ha: { balancerId: string; etcdUp: boolean; leaders: { group: string; leader: string; leading: boolean }[] } };
    expect(state.ha.etcdUp).toBe(true);
    expect(state.ha.leaders.find((l) => l.group === 'echo')).toEqual({ group: 'echo', leader: leader.coordinator!.id, leading: true });
    expect(await (await fetch(`http://${leader.adminAddress}/healthz`)).text()).toBe('ok\n');
    const metrics = await (await fetch(`http://${leader.adminAddress}/metrics`)).text();
    expect(metrics).toContain('rebind_ha_etcd_up 1');
    expect(metrics).toContain('rebind_ha_leader{group="echo"} 1');
    expect(metrics).toContain('rebind_ha_balancers 3');
    expect(metrics).toMatch(/rebind_ha_leader_changes_total\{group="echo"\} 1/);
    const followerMetrics = await (await fetch(`http://${follower.adminAddress}/metrics`)).text();
    expect(followerMetrics).toContain('rebind_ha_leader{group="echo"} 0');

    const stoppedAt = Date.now();
    await leader.stop();
    const rest = bs.filter((b) => b !== leader);
    await waitFor(() => leadersOf(rest, 'echo').length === 1 && leadersOf(rest, 'stock/Quotes').length === 1, 5000, 5, 'new leaders after stop');
    const handOffMs = Date.now() - stoppedAt;
    console.log(`leader hand-off after stop(): ${handOffMs} ms`);
    expect(handOffMs).toBeLessThan(2 * INTERVAL_MS);
    expect(leader.decisions.recent().some((d) => d.kind === 'leader' && d.group === 'echo')).toBe(true);
  }, 40_000);

  it('a SIGKILLed leader: another leads within TTL + 1 interval, and it plans the next imbalance (a non-leader does not)', async () => {
    const prefix = freshPrefix();
    let child: ChildBalancer | null = await startChildBalancer({ groups: GROUPS, ha: haSection(etcdProcess().endpoint, prefix, { balancerId: 'child' }) });
    cleanups.push(() => child?.kill());
    const bs = await balancers(2, prefix);
    await waitFor(() => bs.every((b) => b.coordinator!.leaderOf('echo') === 'child' && b.coordinator!.balancers().length === 3), 10_000, 20, 'the child leads echo');
    expect(leadersOf(bs, 'echo')).toEqual([]);

    const killedAt = Date.now();
    await child.kill();
    child = null;
    await waitFor(() => leadersOf(bs, 'echo').length === 1, 10_000, 5, 'a new leader after SIGKILL');
    const failoverMs = Date.now() - killedAt;
    console.log(`leader failover after SIGKILL (lease TTL ${TTL_MS} ms): ${failoverMs} ms`);
    // Not before etcd could expire the lease; within TTL + 1 report interval (+ 1 s for a busy machine).
    expect(failoverMs).toBeGreaterThan(TTL_MS / 2);
    expect(failoverMs).toBeLessThan(TTL_MS + INTERVAL_MS + 1000);
    const leader = leadersOf(bs, 'echo')[0]!;
    const other = bs.find((b) => b !== leader)!;
    await waitFor(() => other.coordinator!.leaderOf('echo') === leader.coordinator!.id, 5000, 20, 'the other agrees on the leader');

    // The same 3:1 imbalance on both survivors: only the leader plans.
    const onLeader = await imbalance(leader, 'echo', ['L1', 'L2']);
    cleanups.push(() => onLeader.stop());
    const onOther = await imbalance(other, 'echo', ['O1', 'O2']);
    cleanups.push(() => onOther.stop());
    const leaderGroup = leader.registry.groups.get('echo')!;
    const otherGroup = other.registry.groups.get('echo')!;
    await waitFor(() => leaderGroup.counters.advisories > 0, 15_000, 20, 'the new leader plans the imbalance');
    // The other had the same imbalance as long (it started after): it planned nothing, sent nothing.
    await waitFor(() => [...otherGroup.members.values()].every((m) => m.reports >= 4), 10_000, 20, 'the other group reported');
    expect(otherGroup.lastPlan).toBe(null);
    expect(otherGroup.counters.advisories).toBe(0);
    expect(onLeader.loads.reduce((s, l) => s + l.failed, 0)).toBe(0);
    expect(onOther.loads.reduce((s, l) => s + l.failed, 0)).toBe(0);
  }, 60_000);
});

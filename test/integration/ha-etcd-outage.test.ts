/**
 * etcd SIGKILLed for 10 s under a balancer with `ha`: binds and forwards go
 * on, no plan is made (an imbalance that would be planned is not), /healthz
 * and metrics say degraded; etcd restarted: planning resumes without
 * restarting anything.
 */
import { describe, expect, it } from 'vitest';
import { sleep, waitFor } from '../support/cluster';
import { freshPrefix, imbalance, startHaBalancer, useEtcd } from '../support/ha-coord';

const INTERVAL_MS = 500;
const OUTAGE_MS = 10_000;

const { etcd: etcdProcess, cleanups } = useEtcd();

describe('HA: etcd outage', () => {
  it('etcd down 10 s: binds and forwards go on, no plan, degraded health; etcd back: planning resumes', async () => {
    const b = await startHaBalancer(etcdProcess().endpoint, freshPrefix(), [{ name: 'echo', granularity: 'on-demand', strategy: 'minimum_dispersion', reportIntervalMs: INTERVAL_MS, holdMs: 0 }]);
    cleanups.push(() => b.stop());
    await waitFor(() => b.coordinator!.isLeader('echo'), 10_000, 20, 'leading');
    const health = async () => (await fetch(`http://${b.adminAddress}/healthz`)).text();
    expect(await health()).toBe('ok\n');

    const killedAt = Date.now();
    await etcdProcess().kill();
    // The proof of leadership runs out within one TTL (2 s); etcd is noticed down about as fast.
    await waitFor(() => !b.coordinator!.isLeader('echo') && !b.coordinator!.etcdUp, 5000, 10, 'leadership and etcd lost');
    console.log(`not planning ${Date.now() - killedAt} ms after etcd was killed`);
    expect(await health()).toMatch(/^degraded: etcd unreachable since \d{4}-\d\d-\d\dT[0-9:.]+Z, not planning\n$/);
    const metrics = await (await fetch(`http://${b.adminAddress}/metrics`)).text();
    expect(metrics).toContain('rebind_ha_etcd_up 0');
    expect(metrics).toContain('rebind_ha_leader{group="echo"} 0');

    // Replicas attach, clients bind (forwards) and call: all while etcd is down.
    const load = await imbalance(b, 'echo', ['A', 'B']);
    cleanups.push(() => load.stop());
    const group = b.registry.groups.get('echo')!;
    await waitFor(() => [...group.members.values()].every((m) => m.reports >= 3), 10_000, 20, 'reports during the outage');
    expect(group.counters.binds).toBeGreaterThanOrEqual(4);
    await sleep(Math.max(0, OUTAGE_MS - (Date.now() - killedAt)));
    // Imbalanced all along, and no plan was made.
    expect(group.lastPlan).toBe(null);
    expect(group.counters.advisories).toBe(0);
    expect(load.loads.reduce((s, l) => s + l.ok, 0)).toBeGreaterThan(100);
    expect(load.loads.reduce((s, l) => s + l.failed, 0)).toBe(0);
    expect(await health()).toMatch(/^degraded/);

    const restartedAt = Date.now();
    await etcdProcess().restart();
    await waitFor(() => group.counters.advisories > 0, 15_000, 20, 'a plan after etcd returned');
    console.log(`planning resumed ${Date.now() - restartedAt} ms after etcd was restarted`);
    expect(await health()).toBe('ok\n');
    expect(load.loads.reduce((s, l) => s + l.failed, 0)).toBe(0);
  }, 60_000);
});

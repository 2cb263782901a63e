/**
 * Run-time configuration through etcd: a strategy or granularity switch made
 * through one balancer's Admin API is in force on every balancer within one
 * report interval, and again after all of them restart (etcd's run-time value
 * wins over the file's); with etcd unreachable a switch is refused with
 * UNAVAILABLE and changes nothing.
 */
import { describe, expect, it } from 'vitest';
import type { Balancer } from '../../src/index';
import { adminCall, adminClient } from '../../src/cli/admin-client';
import { waitFor } from '../support/cluster';
import { freshPrefix, startHaBalancer, useEtcd } from '../support/ha-coord';

const INTERVAL_MS = 1000;
const GROUPS = [{ name: 'echo', granularity: 'on-demand', strategy: 'round_robin', reportIntervalMs: INTERVAL_MS }];

const { etcd: etcdProcess, cleanups } = useEtcd();

async function three(prefix: string): Promise<Balancer[]> {
  const bs: Balancer[] = [];
  for (let i = 0; i < 3; i++) {
    const b = await startHaBalancer(etcdProcess().endpoint, prefix, GROUPS, { balancerId: `b${i}` });
    cleanups.push(() => b.stop());
    bs.push(b);
  }
  return bs;
}

const strategyOf = (b: Balancer) => {
  const g = b.registry.groups.get('echo')!;
  return `${g.strategyName} ${JSON.stringify(g.config.strategy.params)} ${g.granularity}`;
};

describe('HA: run-time configuration in etcd', () => {
  it('a switch through one balancer is in force on all within one report interval, and after all restart', async () => {
    const prefix = freshPrefix();
    let bs = await three(prefix);
    await waitFor(() => bs.every((b) => b.coordinator!.etcdUp), 10_000, 20, 'etcd up');
    expect(bs.map(strategyOf)).toEqual(Array(3).fill('round_robin {} on-demand'));
    const client = adminClient(bs[1]!.controlAddress);
    cleanups.push(() => client.close());
    const t0 = Date.now();
    await adminCall(client, bs[1]!.controlAddress, 'SetStrategy', { group: 'echo', strategy: 'minimum_dispersion', paramsJson: '{"tolerance":0.07}' });
    const want = 'minimum_dispersion {"tolerance":0.07,"minGain":0.02,"maxMoves":32} on-demand';
    await waitFor(() => bs.every((b) => strategyOf(b) === want), 5000, 5, 'the strategy on all three');
    const strategyMs = Date.now() - t0;
    await adminCall(client, bs[1]!.controlAddress, 'SetGranularity', { group: 'echo', granularity: 'per-session' });
    const t1 = Date.now();
    const want2 = want.replace('on-demand', 'per-session');
    await waitFor(() => bs.every((b) => strategyOf(b) === want2), 5000, 5, 'the granularity on all three');
    const granularityMs = Date.now() - t1;
    console.log(`switch in force on all three: strategy ${strategyMs} ms, granularity ${granularityMs} ms after the answer`);
    expect(strategyMs).toBeLessThan(INTERVAL_MS);
    expect(granularityMs).toBeLessThan(INTERVAL_MS);
    // The other balancers log where the change came from.
    expect(bs[2]!.decisions.recent().some((d) => d.kind === 'strategy' && d.text.includes('(by b1)'))).toBe(true);

    // All three restart with the file's round_robin: etcd's value wins from the start.
    for (const b of bs) await b.stop();
    bs = await three(prefix);
    expect(bs.map(strategyOf)).toEqual(Array(3).fill(want2));
  }, 40_000);

  it('etcd unreachable: a switch is refused with UNAVAILABLE and changes nothing; etcd back: switches work again', async () => {
    const prefix = freshPrefix();
    const b = await startHaBalancer(etcdProcess().endpoint, prefix, GROUPS, { balancerId: 'solo' });
    cleanups.push(() => b.stop());
    await waitFor(() => b.coordinator!.etcdUp, 10_000, 20, 'etcd up');
    const client = adminClient(b.controlAddress);
    cleanups.push(() => client.close());
    await etcdProcess().kill();
    try {
      const refused = await adminCall(client, b.controlAddress, 'SetStrategy', { group: 'echo', strategy: 'p2c', paramsJson: '' }).then(
        () => null,
        (err: Error) => err.message,
      );
      expect(refused).toMatch(/^UNAVAILABLE: etcd is unreachable: run-time changes are stored in etcd/);
      expect(strategyOf(b)).toBe('round_robin {} on-demand');
      // Invalid input is still refused as such, before etcd is asked.
      const invalid = await adminCall(client, b.controlAddress, 'SetStrategy', { group: 'echo', strategy: 'nope', paramsJson: '' }).then(
        () => null,
        (err: Error) => err.message,
      );
      expect(invalid).toMatch(/^INVALID_ARGUMENT: strategy "nope" is unknown/);
    } finally {
      await etcdProcess().restart();
    }
    await waitFor(() => b.coordinator!.etcdUp, 10_000, 20, 'etcd up again');
    await adminCall(client, b.controlAddress, 'SetStrategy', { group: 'echo', strategy: 'p2c', paramsJson: '' });
    expect(b.registry.groups.get('echo')!.strategyName).toBe('p2c');
  }, 40_000);
});

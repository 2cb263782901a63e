/**
 * The HA coordinator against a real etcd on loopback: SharedDoc
 * (get / compareAndSwap / watch), one leader per group among several
 * coordinators, hand-off on stop() and on a crash (no revoke), and a start
 * while etcd is down that resumes by itself when etcd comes up.
 */
import pino from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { EtcdProcess, ensureEtcd } from '../../bench/lib/etcd';
import { parseBalancerConfig } from '../../src/balancer/config';
import { Coordinator } from '../../src/balancer/ha/coordinator';
import { Etcd3 } from 'etcd3';
import { sleep, waitFor } from '../support/cluster';
import { freshPrefix, haSection } from '../support/ha-coord';

const log = pino({ level: 'silent' });
/** Why etcd is unavailable (the tests skip with it), or null. */
let skip: string | null = null;
let etcd: EtcdProcess;
const coordinators: Coordinator[] = [];

beforeAll(async () => {
  const available = await ensureEtcd();
  if (typeof available === 'string') {
    skip = available;
    console.warn(`HA tests skipped: ${available}`);
  } else etcd = await EtcdProcess.start();
}, 300_000);
afterAll(async () => {
  for (const c of coordinators) await c.stop();
  await etcd?.stop();
});

function coordinator(prefix: string, groups: string[], id?: string, endpoint = etcd.endpoint, now?: () => number): Coordinator {
  const parsed = parseBalancerConfig({ ha: haSection(endpoint, prefix, id === undefined ? {} : { balancerId: id }) });
  if (!parsed.ok) throw new Error(parsed.errors.join());
  const c = new Coordinator({ config: parsed.value.ha!, self: () => ({ address: 'a:1', controlAddress: 'c:1', adminAddress: '', startedAtMs: 1 }), groups: () => groups, log, ...(now !== undefined ? { now } : {}) });
  coordinators.push(c);
  return c;
}

describe('HA coordinator on etcd', () => {
  beforeEach((ctx) => {
    if (skip !== null) ctx.skip(`etcd unavailable: ${skip}`);
  });

  it('SharedDoc: create-if-absent, compare-and-swap on the revision, watch with the current value and each change', async () => {
    const prefix = freshPrefix();
    const a = coordinator(prefix, []);
    const b = coordinator(prefix, []);
    a.start();
    b.start();
    const docA = a.sharedDoc('keyring');
    const docB = b.sharedDoc('keyring');
    await waitFor(() => a.etcdUp && b.etcdUp, 10_000, 20, 'etcd up');
    expect(await docA.get()).toBe(null);
    expect(await docA.compareAndSwap(null, 'v1')).toBe(true);
    // B's create-if-absent loses: the doc exists.
    expect(await docB.compareAndSwap(null, 'other')).toBe(false);
    const first = await docB.get();
    expect(first?.value).toBe('v1');
    const seen: string[] = [];
    const unwatch = docB.watch((v) => seen.push(v));
    await waitFor(() => seen.includes('v1'), 5000, 20, 'the current value on watch');
    expect(await docB.compareAndSwap(first!.revision, 'v2')).toBe(true);
    // A stale revision loses.
    expect(await docA.compareAndSwap(first!.revision, 'v3')).toBe(false);
    await waitFor(() => seen.includes('v2'), 5000, 20, 'the change on watch');
    expect(seen).not.toContain('v3');
    expect((await docA.get())?.value).toBe('v2');
    unwatch();
    expect(await docA.compareAndSwap((await docA.get())!.revision, 'v4')).toBe(true);
    await sleep(300);
    expect(seen).not.toContain('v4');
    expect(() => a.sharedDoc('../etc')).toThrow(/shared doc name/);
  });

  it('exactly one leader per group; stop() hands off at once; a crash hands off within the TTL', async () => {
    const prefix = freshPrefix();
    const groups = ['g1', 'stock/Quotes'];
    const cs = [coordinator(prefix, groups, 'b1'), coordinator(prefix, groups, 'b2'), coordinator(prefix, groups, 'b3')];
    for (const c of cs) c.start();
    const leadersOf = (g: string) => cs.filter((c) => c.isLeader(g));
    await waitFor(() => groups.every((g) => leadersOf(g).length === 1), 10_000, 20, 'a leader per group');
    await waitFor(() => cs.every((c) => c.balancers().length === 3 && c.peerCount() === 3), 5000, 20, 'three balancers registered');
    // Every coordinator learns who leads (from its own campaign's answer or the watch: a follower may hear of it a moment after the leader knows).
    for (const g of groups) {
      const leader = leadersOf(g)[0]!;
      await waitFor(() => cs.every((c) => c.leaderOf(g) === leader.id), 5000, 10, `every coordinator naming ${leader.id} the leader of ${g}`);
      expect(leadersOf(g)).toEqual([leader]);
    }
    // Clean stop: the lease is revoked, another leads within one report interval (1 s here).
    const first = leadersOf('g1')[0]!;
    const stoppedAt = Date.now();
    await first.stop();
    const rest = cs.filter((c) => c !== first);
    await waitFor(() => rest.filter((c) => c.isLeader('g1')).length === 1, 5000, 5, 'a new leader after stop');
    const handOffMs = Date.now() - stoppedAt;
    console.log(`leader hand-off after stop(): ${handOffMs} ms`);
    expect(handOffMs).toBeLessThan(1000);
    await waitFor(() => rest.every((c) => c.balancers().length === 2), 5000, 20, 'the stopped balancer unregistered');
    // Crash: no revoke; etcd expires the lease after the TTL (2 s), then the key goes and another campaigns.
    const second = rest.find((c) => c.isLeader('g1'))!;
    const survivor = rest.find((c) => c !== second)!;
    const crashedAt = Date.now();
    second.abandon();
    expect(second.isLeader('g1')).toBe(false);
    await waitFor(() => survivor.isLeader('g1') && survivor.isLeader('stock/Quotes'), 10_000, 5, 'the survivor leads after the crash');
    const crashHandOffMs = Date.now() - crashedAt;
    console.log(`leader hand-off after a crash (lease TTL 2000 ms): ${crashHandOffMs} ms`);
    // Not before the lease could have expired in etcd (no two planners), and within TTL + 1 interval (+ slack for a shared machine).
    expect(crashHandOffMs).toBeGreaterThan(1000);
    expect(crashHandOffMs).toBeLessThan(2000 + 1000 + 1000);
    expect(survivor.leaderGains.get('g1')).toBeGreaterThanOrEqual(1);
  }, 30_000);

  it('ignores (and counts) registrations it cannot use: a bad key, a value that is not JSON', async () => {
    const prefix = freshPrefix();
    const c = coordinator(prefix, ['g'], 'good');
    c.start();
    await waitFor(() => c.isLeader('g') && c.balancers().length === 1, 10_000, 20, 'registered and leading');
    const raw = new Etcd3({ hosts: etcd.endpoint });
    try {
      await raw.put(`${prefix}balancers/bad id!`).value('{}');
      await raw.put(`${prefix}balancers/garbled`).value('not json');
      await raw.put(`${prefix}balancers/other`).value(JSON.stringify({ id: 'spoofed', address: 'x:1', controlAddress: 'y:1', adminAddress: '', startedAtMs: 5 }));
      await waitFor(() => c.ignoredEntries === 2 && c.balancers().length === 2, 5000, 20, 'two ignored, one more balancer');
      // The key names the balancer, whatever its value says; its delete removes it.
      expect(c.balancers().map((b) => b.id)).toEqual(['good', 'other']);
      await raw.delete().key(`${prefix}balancers/other`);
      await waitFor(() => c.balancers().length === 1, 5000, 20, 'the deleted registration gone');
    } finally {
      raw.close();
    }
  });

  it('a wall clock stepped back does not stretch the proof: with etcd gone the leader stops planning within the TTL', async () => {
    const prefix = freshPrefix();
    const own = await EtcdProcess.start();
    let skewMs = 0;
    try {
      const c = coordinator(prefix, ['g'], 'skewed', own.endpoint, () => Date.now() - skewMs);
      c.start();
      await waitFor(() => c.isLeader('g'), 10_000, 20, 'leading');
      await own.kill();
      skewMs = 60_000; // NTP steps the clock back a minute
      const killedAt = performance.now();
      await waitFor(() => !c.isLeader('g'), 5000, 10, 'leadership given up');
      // TTL 2 s: etcd may expire the lease 2 s after the last keep-alive; the proof must end by then (+ 500 ms of polling slack; the old wall-clock proof lasted 60 s more).
      expect(performance.now() - killedAt).toBeLessThan(2000 + 500);
      await c.stop();
    } finally {
      await own.stop();
    }
  }, 40_000);

  it('start() with etcd down returns at once, reports etcd down, and campaigns when etcd comes up', async () => {
    const prefix = freshPrefix();
    // A second etcd, started only later on its own ports.
    const later = await EtcdProcess.start();
    const endpoint = later.endpoint;
    await later.kill();
    try {
      const c = coordinator(prefix, ['g'], 'late', endpoint);
      const t0 = Date.now();
      c.start();
      await c.synced(5000);
      expect(Date.now() - t0).toBeLessThan(2500);
      expect(c.etcdUp).toBe(false);
      expect(c.isLeader('g')).toBe(false);
      await sleep(1500);
      expect(c.isLeader('g')).toBe(false);
      const upAt = Date.now();
      await later.restart();
      await waitFor(() => c.etcdUp && c.isLeader('g'), 10_000, 20, 'leading once etcd is up');
      console.log(`coordinator resumed ${Date.now() - upAt} ms after etcd accepted connections`);
      expect(Date.now() - upAt).toBeLessThan(3000);
      await c.stop();
    } finally {
      await later.stop();
    }
  }, 40_000);
});

/**
 * Issue 14's acceptance, end to end on a real etcd: 3 balancers (each its own
 * process, so the leader can be SIGKILLed), 4 replicas attached to all three,
 * 8 rebind clients and 2 plain clients whose targets list the three
 * balancers. SIGKILL the planning leader:
 * - another balancer leads within 2 report intervals, and the next
 *   imbalance (a fifth replica joining) is planned by it;
 * - bound rebind clients see 0 failed calls;
 * - a new rebind client binds through the survivors within 1 s;
 * - plain clients' calls fail only if they were in flight on the killed
 *   balancer (at most one each: one call in flight per client), and succeed
 *   on retry;
 * - vouchers the new leader signs are followed by clients bound through
 *   another balancer (one shared key ring), even after the ring was rotated
 *   twice in etcd after they bound (the new keys reach them endorsed by the
 *   old ones): a rotation strands no client.
 */
import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { Etcd3 } from 'etcd3';
import { parseRing, rotateRing, serializeRing } from '../../src/balancer/keyring';
import { attach, balancerTarget, clientEvents, clientOptions, type Replica } from '../../src/index';
import { adminCall, adminClient } from '../../src/cli/admin-client';
import type { ListGroupsResponse__Output } from '../../src/generated/rebind/v1/ListGroupsResponse';
import { echoClient, sleep, unary, waitFor } from '../support/cluster';
import { echoImplementation, startEchoServer, type EchoClient } from '../support/echo';
import { freshPrefix, startChildBalancer, type ChildBalancer, useEtcd } from '../support/ha-coord';

const INTERVAL_MS = 1000;
const GROUP = { name: 'echo', granularity: 'on-demand', strategy: 'minimum_dispersion', reportIntervalMs: INTERVAL_MS, holdMs: 2000 };

const { etcd: etcdProcess, cleanups } = useEtcd();

interface Named extends ChildBalancer {
  id: string;
}

async function listGroups(b: ChildBalancer): Promise<ListGroupsResponse__Output> {
  const admin = adminClient(b.control);
  try {
    return await adminCall<ListGroupsResponse__Output>(admin, b.control, 'ListGroups', { group: 'echo' });
  } finally {
    admin.close();
  }
}

async function startReplicaOn(name: string, controls: string[]): Promise<{ replica: Replica; server: grpc.Server; address: string; stats: { calls: number } }> {
  const stats = { calls: 0, byMethod: {} };
  const { server, address } = await startEchoServer(name, echoImplementation(name, stats));
  const replica = await attach(server, { balancer: controls, group: 'echo', address });
  cleanups.push(async () => {
    await replica.detach('test over');
    server.forceShutdown();
  });
  return { replica, server, address, stats };
}

/** Calls in a loop (one in flight), counting outcomes; `retry` re-sends a failed call once. */
function loop(stub: EchoClient, retry: boolean) {
  const state = { ok: 0, failed: 0, retriedOk: 0, retriedFailed: 0, errors: [] as string[], running: true, done: Promise.resolve() };
  state.done = (async () => {
    while (state.running) {
      const err = await unary(stub, { text: 'load' }, undefined, { deadline: Date.now() + 3000 }).then(
        () => null,
        (e: grpc.ServiceError) => e,
      );
      if (err === null) state.ok++;
      else {
        state.failed++;
        if (state.errors.length < 10) state.errors.push(`${grpc.status[err.code]}: ${err.details}`);
        if (retry) {
          const again = await unary(stub, { text: 'retry' }, undefined, { deadline: Date.now() + 3000 }).then(
            () => true,
            () => false,
          );
          if (again) state.retriedOk++;
          else state.retriedFailed++;
        }
      }
      await sleep(20);
    }
  })();
  return state;
}

describe('HA acceptance: 3 balancers on etcd, the planning leader SIGKILLed', () => {
  it('another leads within 2 intervals and plans the next imbalance; bound clients 0 failed; new clients fail over within 1 s; plain clients fail only in flight', async () => {
    const prefix = freshPrefix();
    const balancers: Named[] = [];
    for (const id of ['b0', 'b1', 'b2']) {
      const b = await startChildBalancer({ groups: [GROUP], ha: { etcd: { endpoints: [etcdProcess().endpoint], prefix }, leaseTtlMs: 1000, balancerId: id } });
      cleanups.push(() => b.kill());
      balancers.push({ ...b, id });
    }
    const controls = balancers.map((b) => b.control);
    // The leader: whoever the balancers agree on.
    let leaderId = '';
    await waitFor(
      () => {
        void listGroups(balancers[0]!).then((r) => (leaderId = r.ha?.leaders.find((l) => l.group === 'echo')?.balancerId ?? ''), () => undefined);
        return leaderId !== '';
      },
      10_000,
      100,
      'a leader for echo',
    );
    const leader = balancers.find((b) => b.id === leaderId)!;
    const survivors = balancers.filter((b) => b !== leader);

    for (const n of ['r1', 'r2', 'r3', 'r4']) await startReplicaOn(n, controls);
    // Clients list the leader first: plain clients (pick_first) use it; each rebind channel takes the list in its own order, so their binds spread over the three.
    const target = balancerTarget([leader.data, ...survivors.map((b) => b.data)]);
    const refused: string[] = [];
    const listener = { refused: (from: string, what: string, why: string) => void refused.push(`${from} ${what}: ${why}`) };
    clientEvents.add(listener);
    cleanups.push(() => clientEvents.delete(listener));
    const rebindStubs = Array.from({ length: 8 }, (_, i) => echoClient(target, clientOptions({ clientId: `client-${i}-ha` })));
    const plainStubs = [0, 1].map(() => echoClient(target));
    cleanups.push(() => [...rebindStubs, ...plainStubs].forEach((s) => s.close()));
    for (const s of rebindStubs) await unary(s, { text: 'bind' }, undefined, { deadline: Date.now() + 5000 });
    const rebindLoops = rebindStubs.map((s) => loop(s, false));
    const plainLoops = plainStubs.map((s) => loop(s, true));
    cleanups.push(async () => {
      for (const l of [...rebindLoops, ...plainLoops]) l.running = false;
      await Promise.all([...rebindLoops, ...plainLoops].map((l) => l.done));
    });
    await sleep(3 * INTERVAL_MS);
    expect(rebindLoops.every((l) => l.ok > 0) && plainLoops.every((l) => l.ok > 0)).toBe(true);

    // Rotate the shared key ring twice, as a balancer would (compare-and-swap in etcd), after every client pinned the old keys.
    const etcdClient = new Etcd3({ hosts: etcdProcess().endpoint });
    cleanups.push(() => etcdClient.close());
    const ringKey = `${prefix}docs/keyring`;
    const before = parseRing(await etcdClient.get(ringKey).string());
    if (typeof before === 'string') throw new Error(`the ring in etcd does not parse: ${before}`);
    const rotated = rotateRing(rotateRing(before));
    await etcdClient.put(ringKey).value(serializeRing(rotated));
    await sleep(500);

    // SIGKILL the leader.
    await leader.kill();
    const killedAt = Date.now();
    // A new rebind client (the killed balancer listed first) binds through a survivor within 1 s.
    const fresh = echoClient(target, clientOptions({ clientId: 'fresh-client' }));
    cleanups.push(() => fresh.close());
    const reply = await unary(fresh, { text: 'new' }, undefined, { deadline: Date.now() + 5000 });
    const freshMs = Date.now() - killedAt;
    expect(reply.servedBy).toMatch(/^r[1-4]$/);
    expect(freshMs).toBeLessThan(1000);

    // Another balancer leads within 2 report intervals.
    let newLeader = null as Named | null;
    while (newLeader === null && Date.now() - killedAt < 10_000) {
      for (const s of survivors) {
        const r = await listGroups(s).catch(() => null);
        if (r?.ha?.leaders.some((l) => l.group === 'echo' && l.leading)) newLeader = s;
      }
      if (newLeader === null) await sleep(25);
    }
    const leadMs = Date.now() - killedAt;
    console.log(`new client bound through a survivor ${freshMs} ms after the SIGKILL; ${newLeader?.id} leads ${leadMs} ms after it`);
    expect(newLeader).not.toBeNull();
    expect(leadMs).toBeLessThanOrEqual(2 * INTERVAL_MS);
    const other = survivors.find((s) => s !== newLeader)!;

    // The next imbalance: a fifth replica joins; the new leader plans moves to it, the other survivor plans nothing.
    const joinedAt = Date.now();
    const r5 = await startReplicaOn('r5', controls.filter((c) => c !== leader.control));
    expect(r5.replica.balancers.length).toBe(2);
    let byLeader = await listGroups(newLeader!);
    while (byLeader.groups[0]!.lastPlan === null && Date.now() - joinedAt < 15_000) {
      await sleep(100);
      byLeader = await listGroups(newLeader!);
    }
    const byOther = await listGroups(other);
    const plan = byLeader.groups[0]!.lastPlan;
    console.log(`the new leader planned ${plan?.moveCount} move(s) ${plan === null ? '-' : Number(plan.atUnixMs) - joinedAt} ms after r5 joined`);
    expect(plan).not.toBeNull();
    expect(Number(plan!.atUnixMs)).toBeGreaterThanOrEqual(joinedAt);
    expect(plan!.moveCount).toBeGreaterThan(0);
    expect(byOther.groups[0]!.lastPlan === null || Number(byOther.groups[0]!.lastPlan.atUnixMs) < killedAt).toBe(true);
    await sleep(INTERVAL_MS);

    for (const l of [...rebindLoops, ...plainLoops]) l.running = false;
    await Promise.all([...rebindLoops, ...plainLoops].map((l) => l.done));
    // Bound rebind clients: no failed call, and the moves signed by the new leader were followed (no voucher refused).
    expect(rebindLoops.map((l) => l.failed)).toEqual(Array(8).fill(0));
    expect(rebindLoops.every((l) => l.ok > 50)).toBe(true);
    expect(refused).toEqual([]);
    // Plain clients: at most the one call each had in flight on the killed balancer failed, and its retry succeeded.
    for (const l of plainLoops) {
      expect(l.failed, l.errors.join('; ')).toBeLessThanOrEqual(1);
      expect(l.retriedFailed).toBe(0);
      expect(l.retriedOk).toBe(l.failed);
      expect(l.ok).toBeGreaterThan(50);
    }
  }, 90_000);
});

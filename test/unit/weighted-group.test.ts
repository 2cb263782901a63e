/**
 * Weighted bindings in the balancer, without sockets: the per-request
 * (direct) binding math, and a group + analyzer on virtual time turning a
 * plan's shares into vouched bindings for the members to piggy-back.
 */
import { VirtualAction, VirtualTimeScheduler } from 'rxjs';
import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { Analyzer } from '../../src/balancer/analyzer';
import { parseBalancerConfig } from '../../src/balancer/config';
import { clampedCapacities, offersDiffer, shardBinding, shards } from '../../src/balancer/direct-bindings';
import { Member, type AdvisorySink } from '../../src/balancer/member';
import { Registry } from '../../src/balancer/registry';
import { Voucher } from '../../src/balancer/vouch';
import { balancerKey, checkVoucher } from '../../src/interceptors/vouch-check';
import type { Advisory } from '../../src/generated/rebind/v1/Advisory';
import type { LoadReport__Output } from '../../src/generated/rebind/v1/LoadReport';

const log = pino({ level: 'silent' });

describe('per-request (direct) binding math', () => {
  it('capacities: unknown ones at the median, all within 1/4..4x the median', () => {
    expect(clampedCapacities([100, 50, undefined])).toEqual([100, 50, 100]);
    expect(clampedCapacities([1, 10, 10, 1000])).toEqual([2.5, 10, 10, 40]);
    expect(clampedCapacities([undefined, undefined])).toEqual([1, 1]);
    expect(clampedCapacities([0, Number.NaN, 8])).toEqual([8, 8, 8]);
  });

  it('shards of at most 16, sizes within one of each other', () => {
    expect(shards(Array.from({ length: 16 }, (_, i) => i)).map((s) => s.length)).toEqual([16]);
    const seventeen = shards(Array.from({ length: 17 }, (_, i) => i));
    expect(seventeen.map((s) => s.length)).toEqual([9, 8]);
    expect(seventeen[1]!.slice(0, 3)).toEqual([1, 3, 5]);
    expect(shards(Array.from({ length: 40 }, (_, i) => i)).map((s) => s.length)).toEqual([14, 13, 13]);
  });

  it('a shard binding weighs members by capacity, canonical and adding up to 1000', () => {
    expect(
      shardBinding([
        { address: '10.0.0.2:1', capacity: 50 },
        { address: '10.0.0.1:1', capacity: 100 },
      ]),
    ).toBe('10.0.0.1:1=667,10.0.0.2:1=333');
    expect(shardBinding([{ address: '10.0.0.1:1', capacity: 0 }])).toBeNull();
  });

  it('offers are re-sent for other members or a weight moved by 50 per-mille, not for less', () => {
    const a = new Map([
      ['m1', '10.0.0.1:1=500,10.0.0.2:1=500'],
      ['m2', '10.0.0.1:1=500,10.0.0.2:1=500'],
    ]);
    const small = new Map([
      ['m1', '10.0.0.1:1=549,10.0.0.2:1=451'],
      ['m2', '10.0.0.1:1=549,10.0.0.2:1=451'],
    ]);
    const step = new Map([
      ['m1', '10.0.0.1:1=550,10.0.0.2:1=450'],
      ['m2', '10.0.0.1:1=550,10.0.0.2:1=450'],
    ]);
    expect(offersDiffer(a, small)).toBe(false);
    expect(offersDiffer(a, step)).toBe(true);
    expect(offersDiffer(a, new Map([['m1', '10.0.0.1:1=1000']]))).toBe(true);
    expect(offersDiffer(a, new Map([...a, ['m3', '10.0.0.1:1=1000']]))).toBe(true);
  });
});

class FakeSink implements AdvisorySink {
  advisories: Advisory[] = [];
  sendAdvisory(advisory: Advisory): boolean {
    this.advisories.push(advisory);
    return true;
  }
  close(): void {}
}

function report(seq: number, callsPerS: number, inFlight: number, clients: Record<string, number>, sets = true): LoadReport__Output {
  return {
    seq,
    clientCount: Object.keys(clients).length,
    intervalMs: 100,
    callsPerS,
    inFlight,
    latencyMs: 1,
    eventLoopUtilization: 0,
    cpuCores: 0,
    custom: 0,
    hasCustom: false,
    topClients: Object.entries(clients).map(([clientId, c]) => ({ clientId, callsPerS: c, sets })),
    otherCallsPerS: 0,
    forwards: 0,
    draining: false,
  };
}

function setup(group: Record<string, unknown>, addresses: string[]) {
  const parsed = parseBalancerConfig({ groups: [{ name: 'g', reportIntervalMs: 100, planMinCalls: 0, ...group }] });
  if (!parsed.ok) throw new Error(parsed.errors.join());
  const scheduler = new VirtualTimeScheduler(VirtualAction, 1000);
  const registry = new Registry(parsed.value, log, () => 0.5);
  const voucher = new Voucher();
  const analyzer = new Analyzer(registry, scheduler, log, {}, voucher);
  const members = addresses.map((address) => {
    const sink = new FakeSink();
    const member = registry.attach({ protocolVersion: 1, group: 'g', address, methods: [{ path: '/p.S/M', kind: 'UNARY' }], replicaId: '', resumeSecret: '' }, sink, 0);
    if (!(member instanceof Member)) throw new Error(member.message);
    return { member, sink };
  });
  return { scheduler, registry, analyzer, voucher, members, group: registry.groups.get('g')! };
}

describe('a plan of shares becomes vouched bindings the members piggy-back', () => {
  it('a client of 400 on A (B, C, D idle) is spread 250 each; A gets its binding, vouched as one unit; the ledger holds it as a plan', () => {
    const { analyzer, voucher, members, group } = setup({ granularity: 'on-demand', strategy: 'minimum_dispersion', dampening: 0 }, ['10.0.0.1:1', '10.0.0.2:1', '10.0.0.3:1', '10.0.0.4:1']);
    const [a] = members;
    members.forEach(({ member }, i) => group.applyReport(member, report(1, i === 0 ? 400 : 0, 0, i === 0 ? { 'client-heavy': 400 } : {}), 100));
    const moves = analyzer.analyze(group, 100);
    expect(moves.reduce((sum, m) => sum + m.load, 0)).toBe(400 - 100 + 100); // 200 out of A, then 100 of it on, 100 more out of A
    const binding = '10.0.0.1:1=250,10.0.0.2:1=250,10.0.0.3:1=250,10.0.0.4:1=250';
    expect(a!.sink.advisories).toHaveLength(1);
    const move = a!.sink.advisories[0]!.moves![0]!;
    expect(move).toMatchObject({ clientId: 'client-heavy', binding, target: '10.0.0.1:1' });
    expect(checkVoucher(balancerKey(voucher.publicKey), 'g', binding, move.bindingVouch!)).toBe(true);
    // Only A had the client: nobody else is asked to deliver it.
    expect(members.slice(1).every((m) => m.sink.advisories.length === 0)).toBe(true);
    expect(group.ledger.bindingOf('client-heavy')).toMatchObject({ via: 'plan', members: members.map((m) => ({ memberId: m.member.id, share: 0.25 })) });
    expect(group.ledger.sizeHistogram()).toEqual([0, 0, 0, 0, 1]);
    expect(group.lastPlan).toMatchObject({ atMs: 100, dispersionBefore: 120_000, dispersionAfter: 0 });
    // The planned loads stand until the members have reported the client twice where it now is.
    const transit = group.ledger.transitOf('client-heavy')!;
    expect([...transit.legs.values()].map((l) => l.load)).toEqual([100, 100, 100, 100]);
  });

  it('a client that does not understand sets is moved whole, by a forward from its member', () => {
    const { analyzer, members, group } = setup({ granularity: 'on-demand', strategy: 'minimum_dispersion', dampening: 0 }, ['10.0.0.1:1', '10.0.0.2:1']);
    group.applyReport(members[0]!.member, report(1, 150, 0, { 'client-aaaa': 100, 'client-bbbb': 50 }, false), 100);
    group.applyReport(members[1]!.member, report(1, 0, 0, {}, false), 100);
    analyzer.analyze(group, 100);
    const moves = members[0]!.sink.advisories[0]!.moves!;
    expect(moves.map((m) => [m.clientId, m.target, m.binding ?? ''])).toEqual([['client-bbbb', '10.0.0.2:1', '']]);
    expect(moves[0]!.vouch).not.toBe('');
  });
});

describe('per-request groups offer direct bindings weighted by capacity', () => {
  it('members get their shard binding in every advisory; weights follow calls/s per unit of load; small changes are not re-sent', () => {
    const { analyzer, members, group } = setup({ granularity: 'per-request', strategy: 'round_robin', metric: 'in_flight', dampening: 0, advisoryExpireMs: 2000 }, ['10.0.0.1:1', '10.0.0.2:1']);
    const [a, b] = members;
    // A serves 100 calls/s with 1 in flight (capacity 100), B 100 calls/s with 2 (capacity 50).
    group.applyReport(a!.member, report(1, 100, 1, {}), 100);
    group.applyReport(b!.member, report(1, 100, 2, {}), 100);
    analyzer.analyze(group, 100);
    for (const m of [a!, b!]) {
      // Offered for (2000 + 5000) / 2 - 1000 ms: the voucher (valid 7 s, maybe half used) outlives the offer.
      expect(m.sink.advisories.at(-1)).toMatchObject({ recallAll: true, offerBinding: '10.0.0.1:1=667,10.0.0.2:1=333', offerExpireMs: 2500 });
      expect(m.sink.advisories.at(-1)!.offerVouch).not.toBe('');
    }
    // B a little faster (capacity 52): 658/342, under the 50 per-mille step: nothing new.
    group.applyReport(b!.member, report(2, 104, 2, {}), 200);
    expect(group.refreshOffers()).toBe(false);
    expect(group.offerFor(b!.member, 200)).toBe('10.0.0.1:1=667,10.0.0.2:1=333');
    // B as fast as A: 500/500 is sent.
    group.applyReport(b!.member, report(3, 200, 2, {}), 300);
    expect(group.refreshOffers()).toBe(true);
    expect(group.offerFor(a!.member, 300)).toBe('10.0.0.1:1=500,10.0.0.2:1=500');
  });

  it('switching away from per-request: each member offers itself alone for advisoryExpireMs, then nothing', () => {
    const { analyzer, members, group } = setup({ granularity: 'per-request', strategy: 'round_robin', advisoryExpireMs: 2000 }, ['10.0.0.1:1', '10.0.0.2:1']);
    group.setGranularity('on-demand');
    analyzer.sendRecall(group, false);
    expect(members[0]!.sink.advisories.at(-1)).toMatchObject({ recallAll: false, offerBinding: '10.0.0.1:1=1000', offerExpireMs: 2000 });
    expect(members[1]!.sink.advisories.at(-1)).toMatchObject({ offerBinding: '10.0.0.2:1=1000' });
    expect(group.offerFor(members[0]!.member, 1999)).toBe('10.0.0.1:1=1000');
    expect(group.offerFor(members[0]!.member, 2000)).toBeNull();
  });
});

describe('members clients give up are set aside', () => {
  function twoMembers(holdMs = 5000) {
    const s = setup({ granularity: 'on-demand', strategy: 'least_loaded', dampening: 0, holdMs }, ['10.0.0.1:1', '10.0.0.2:1']);
    // A looks idle (it is slow: few calls complete), B busy: least_loaded would bind to A.
    s.group.applyReport(s.members[0]!.member, report(1, 10, 20, {}), 100);
    s.group.applyReport(s.members[1]!.member, report(1, 100, 1, {}), 100);
    return s;
  }
  const bind = (group: ReturnType<typeof twoMembers>['group'], clientId: string, nowMs: number, avoid?: string) =>
    group.choose('/p.S/M', 'bind', clientId, nowMs, avoid === undefined ? undefined : new Set([avoid]))?.address;

  it('two clients giving a member up set it aside for holdMs: no new client goes there meanwhile, then it is back', () => {
    const { group } = twoMembers();
    expect(bind(group, 'client-first', 200)).toBe('10.0.0.1:1');
    expect(bind(group, 'client-aaaa', 300, '10.0.0.1:1')).toBe('10.0.0.2:1');
    // One avoid (and A's latency, 1 ms, is like B's): A still takes others.
    expect(bind(group, 'client-other1', 400)).toBe('10.0.0.1:1');
    expect(bind(group, 'client-bbbb', 500, '10.0.0.1:1')).toBe('10.0.0.2:1');
    expect(group.counters.membersAvoided).toBe(1);
    expect(bind(group, 'client-other2', 600)).toBe('10.0.0.2:1');
    expect(bind(group, 'client-other3', 5499)).toBe('10.0.0.2:1');
    expect(bind(group, 'client-other4', 5500)).toBe('10.0.0.1:1');
  });

  it('one client is enough when the member is slow (mean latency 4x the others), and plans leave a set-aside member alone', () => {
    const { group, members } = twoMembers();
    group.applyReport(members[0]!.member, { ...report(2, 10, 20, {}), latencyMs: 40 }, 150);
    expect(bind(group, 'client-aaaa', 200, '10.0.0.1:1')).toBe('10.0.0.2:1');
    expect(group.counters.membersAvoided).toBe(1);
    expect(bind(group, 'client-other', 300)).toBe('10.0.0.2:1');
    // minimum_dispersion would move B's clients to the idle-looking A; not while A is set aside.
    group.setStrategy('minimum_dispersion', { tolerance: 0.1, minGain: 0.02, maxMoves: 32 });
    group.applyReport(members[1]!.member, report(2, 100, 1, { 'client-x1': 50, 'client-x2': 50 }, false), 400);
    expect(group.plan(400)).toEqual([]);
  });

  it('never sets aside every member: with all of them set aside, binds go on', () => {
    const { group } = twoMembers();
    for (const [id, t] of [['client-a1', 200], ['client-a2', 210]] as const) bind(group, id, t, '10.0.0.1:1');
    for (const [id, t] of [['client-b1', 220], ['client-b2', 230]] as const) bind(group, id, t, '10.0.0.2:1');
    expect(group.counters.membersAvoided).toBe(2);
    // Both set aside: binds ignore the set-aside rather than refuse (least_loaded's choice: A, the idle-looking one).
    expect(bind(group, 'client-new', 300)).toBe('10.0.0.1:1');
  });
});

describe('per-request bindings follow eligibility', () => {
  it('a member that comes back from SUSPECT is in the next direct binding, without waiting for an analysis', () => {
    const { members, group } = setup({ granularity: 'per-request', strategy: 'round_robin', dampening: 0 }, ['10.0.0.1:1', '10.0.0.2:1']);
    group.suspect(members[0]!.member);
    expect(group.directBinding('/p.S/M', 'client-aaaa', 100)?.text).toBe('10.0.0.2:1=1000');
    // A reports again: NOMINAL.
    group.applyReport(members[0]!.member, report(1, 10, 0, {}), 200);
    expect(group.directBinding('/p.S/M', 'client-bbbb', 210)?.text).toBe('10.0.0.1:1=500,10.0.0.2:1=500');
  });
});

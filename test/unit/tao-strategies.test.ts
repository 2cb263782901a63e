/**
 * TAO-compatible strategies and the other additions, with hand-computed
 * numbers: effective load, thresholds, the 2x-overload case, targeted
 * shedding; random and p2c choices with a scripted random source.
 */
import { describe, expect, it } from 'vitest';
import { leastLoaded } from '../../src/balancer/strategies/least-loaded';
import { loadAverage } from '../../src/balancer/strategies/load-average';
import { loadMinimum } from '../../src/balancer/strategies/load-minimum';
import { p2c } from '../../src/balancer/strategies/p2c';
import { parseParams } from '../../src/balancer/strategies/params';
import { random } from '../../src/balancer/strategies/random';
import { effectiveLoad, selectClients, shed } from '../../src/balancer/strategies/tao';
import type { ClientLoad, MemberLoad, PlanInput, StrategyFactory } from '../../src/balancer/strategies/types';

function member(id: string, load: number, extra: Partial<MemberLoad> = {}): MemberLoad {
  return { id, address: `${id}:1`, load, rawLoad: load, reported: true, pendingBinds: 0, pendingCalls: 0, proxiedInFlight: 0, recentlyShed: false, ...extra };
}

function layout(spec: Record<string, number[]>, held: string[] = []): PlanInput {
  const members: MemberLoad[] = [];
  const clients: ClientLoad[] = [];
  for (const [id, loads] of Object.entries(spec)) {
    members.push(member(id, loads.reduce((a, b) => a + b, 0)));
    loads.forEach((load, i) => clients.push({ clientId: `${id}${i}`, memberId: id, load, held: held.includes(`${id}${i}`) }));
  }
  return { members, clients, nowMs: 0, random: () => 0.5 };
}

function create(factory: StrategyFactory, raw: Record<string, unknown> = {}) {
  const parsed = parseParams(factory, raw, 'params');
  if (!parsed.ok) throw new Error(parsed.errors.join());
  return factory.create(parsed.params);
}

/** A random source that returns the given values in turn. */
function script(...values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length]!;
}

describe('TAO effective load', () => {
  it('E = (dampened load + binds since report x per-balance load) / tolerance', () => {
    // (90 + 2 * 15) / 2 = 60
    expect(effectiveLoad(90, 2, 15, 2)).toBe(60);
    expect(effectiveLoad(90, 0, 15, 1)).toBe(90);
  });
});

describe('least_loaded', () => {
  it('binds to the least effective load, counting binds since the report', () => {
    const s = create(leastLoaded, { perBalanceLoad: 30 });
    // a: 100 + 2*30 = 160, b: 150, c: 170 -> b
    const members = [member('a', 100, { pendingBinds: 2 }), member('b', 150), member('c', 170)];
    expect(s.choose({ members, sequence: 0, random: () => 0, expectedClientLoad: 1, expectedCallLoad: 1 })).toBe(1);
  });

  it('never binds at or above the reject threshold, and refuses when every member is', () => {
    const s = create(leastLoaded, { rejectThreshold: 100, tolerance: 2 });
    // Effective loads 150/2 = 75, 210/2 = 105, 190/2 = 95: only a and c are below 100; a is least.
    expect(s.choose({ members: [member('b', 210), member('a', 150), member('c', 190)], sequence: 0, random: () => 0, expectedClientLoad: 1, expectedCallLoad: 1 })).toBe(1);
    expect(s.choose({ members: [member('a', 200), member('b', 300)], sequence: 0, random: () => 0, expectedClientLoad: 1, expectedCallLoad: 1 })).toBe(-1);
  });

  it('makes no plan with the critical threshold at 0 (TAO default)', () => {
    expect(create(leastLoaded).plan(layout({ a: [300, 300], b: [] }))).toEqual([]);
  });

  it('sheds only the surplus above the critical threshold, to members that stay below it', () => {
    // critical 100: a = 160 (60, 50, 30, 20) has surplus 60; b = 40, c = 90.
    // Clients adding up to 60: 60 alone. It goes to b (40 -> 100, not above 100).
    const s = create(leastLoaded, { criticalThreshold: 100 });
    const moves = s.plan(layout({ a: [60, 50, 30, 20], b: [40], c: [90] }));
    expect(moves).toEqual([{ clientId: 'a0', from: 'a', to: 'b', load: 60 }]);
  });

  it('does not push another member over the critical threshold', () => {
    // a = 150 (one client of 150), b = 60: moving it would put b at 210 > 120.
    expect(create(leastLoaded, { criticalThreshold: 120 }).plan(layout({ a: [150], b: [60] }))).toEqual([]);
  });
});

describe('load_minimum', () => {
  it('advises a member above average and more than 40 % above the least load; sheds the surplus above average', () => {
    // loads 150 (100, 50), 90, 60 -> avg 100, min 60; a: 150/60 - 1 = 1.5 >= 1 (TAO: left as it was), advised here.
    // surplus 50 -> the 50 client moves to the least loaded c (60 -> 110 <= 150).
    const moves = create(loadMinimum).plan(layout({ a: [100, 50], b: [90], c: [60] }));
    expect(moves).toEqual([{ clientId: 'a1', from: 'a', to: 'c', load: 50 }]);
  });

  it('advises a member at exactly 2x the minimum (TAO leaves it un-alerted)', () => {
    // a = 200 (two of 100), b = 100: avg 150, a/min - 1 = 1.0. TAO: "pd >= 1: no change". Here: advised.
    // surplus 50 -> one 100 client covers it (overshoot 50 <= undershoot 50); b ends at 200 = a's load before.
    const moves = create(loadMinimum).plan(layout({ a: [100, 100], b: [100] }));
    expect(moves).toHaveLength(1);
    expect(moves[0]).toMatchObject({ from: 'a', to: 'b', load: 100 });
  });

  it('does not advise within 40 % of the minimum', () => {
    // 130 vs min 100: 30 % above; avg 115.
    expect(create(loadMinimum).plan(layout({ a: [130], b: [100] }))).toEqual([]);
  });

  it('never mirrors an imbalance onto a member that shed lately (no ping-pong)', () => {
    const input = layout({ a: [100, 100], b: [100] });
    const members = input.members.map((m) => (m.id === 'b' ? { ...m, recentlyShed: true } : m));
    expect(create(loadMinimum).plan({ ...input, members })).toEqual([]);
  });

  it('binds with ties within 5 % broken at random', () => {
    const s = create(loadMinimum);
    const members = [member('a', 100), member('b', 103), member('c', 200)];
    // a and b are tied (b is within 5 % of a); c never is. One draw: index floor(random() * 2) among the tied.
    expect(s.choose({ members, sequence: 0, random: () => 0.1, expectedClientLoad: 1, expectedCallLoad: 1 })).toBe(0);
    expect(s.choose({ members, sequence: 0, random: () => 0.9, expectedClientLoad: 1, expectedCallLoad: 1 })).toBe(1);
  });
});

describe('load_average', () => {
  it('advises only beyond 80 % above the average', () => {
    // loads 170, 10, 10, 10: avg 50, a is 240 % above: advised; surplus 120 -> clients 100 + 20 go to the least loaded.
    const moves = create(loadAverage).plan(layout({ a: [100, 50, 20], b: [10], c: [10], d: [10] }));
    expect(moves.map((m) => m.load).sort((x, y) => x - y)).toEqual([20, 100]);
    expect(new Set(moves.map((m) => m.to)).size).toBe(2);
    // 200/100/200/100: 33 % above average, no advice.
    expect(create(loadAverage).plan(layout({ a: [100, 100], b: [50, 50], c: [100, 100], d: [50, 50] }))).toEqual([]);
  });

  it('advises a member at 2x the average or more (TAO leaves it as it was)', () => {
    // avg 100, a = 200: diff exactly 1.0.
    const moves = create(loadAverage, { averageDiff: 5 }).plan(layout({ a: [100, 100], b: [50, 50], c: [0.0001], d: [] }));
    expect(moves.length).toBeGreaterThan(0);
    expect(moves[0]!.from).toBe('a');
  });

  it('binds at random, as TAO does', () => {
    const s = create(loadAverage);
    const members = [member('a', 0), member('b', 1000)];
    expect(s.choose({ members, sequence: 0, random: () => 0.7, expectedClientLoad: 1, expectedCallLoad: 1 })).toBe(1);
  });
});

describe('targeted shedding helpers', () => {
  const c = (id: string, load: number): ClientLoad => ({ clientId: id, memberId: 'a', load, held: false });
  it('selects the clients adding up to the surplus, moving as little load as possible', () => {
    expect(selectClients([c('x', 60), c('y', 50), c('z', 30), c('w', 20)], 80).map((x) => x.clientId)).toEqual(['x', 'w']);
    // nothing fits: the smallest client covering the rest, if it overshoots no more than stopping undershoots
    // 90 covers 50 with an overshoot of 40 <= the undershoot of 50 of moving nothing.
    expect(selectClients([c('x', 100), c('y', 90)], 50).map((x) => x.clientId)).toEqual(['y']);
    // 100 would overshoot 40 by 60 > 40: better to move nothing.
    expect(selectClients([c('x', 100), c('y', 110)], 40).map((x) => x.clientId)).toEqual([]);
  });

  it('moves nothing onto a member that is shedding in the same plan', () => {
    const loads = new Map([['a', 200], ['b', 200], ['c', 100]]);
    const clients = [c('a1', 100), { ...c('b1', 100), memberId: 'b' }];
    const moves = shed(loads, clients, [{ memberId: 'a', amount: 50 }, { memberId: 'b', amount: 50 }], 10, new Set());
    expect(moves.map((m) => m.to)).toEqual(['c']);
  });
});

describe('random and p2c', () => {
  it('random picks uniformly with the injected random source', () => {
    const s = create(random);
    const members = [member('a', 0), member('b', 0), member('c', 0)];
    expect([0, 0.34, 0.99].map((r) => s.choose({ members, sequence: 0, random: () => r, expectedClientLoad: 1, expectedCallLoad: 1 }))).toEqual([0, 1, 2]);
    expect(s.plan(layout({ a: [500], b: [] }))).toEqual([]);
  });

  it('p2c draws two distinct members and takes the less loaded', () => {
    const s = create(p2c);
    const members = [member('a', 50), member('b', 10), member('c', 90), member('d', 30)];
    // first = floor(0.6 * 4) = 2 (c, 90); second = floor(0.0 * 3) = 0 -> a (50): a wins.
    expect(s.choose({ members, sequence: 0, random: script(0.6, 0.0), expectedClientLoad: 1, expectedCallLoad: 1 })).toBe(0);
    // first = floor(0.3 * 4) = 1 (b, 10); second = floor(0.5 * 3) = 1 -> skips b -> 2 (c, 90): b wins.
    expect(s.choose({ members, sequence: 0, random: script(0.3, 0.5), expectedClientLoad: 1, expectedCallLoad: 1 })).toBe(1);
    // The most loaded member never wins: it would have to be drawn twice.
    let worst = 0;
    const rng = script(...Array.from({ length: 200 }, (_, i) => (i * 0.618) % 1));
    for (let i = 0; i < 100; i++) if (s.choose({ members, sequence: i, random: rng, expectedClientLoad: 1, expectedCallLoad: 1 }) === 2) worst++;
    expect(worst).toBe(0);
  });
});

import { describe, expect, it } from 'vitest';
import { chooseLeastLoaded } from '../../src/balancer/strategies/choose';
import { seededRandom } from '../../src/sim/rng';
import { roundRobin } from '../../src/balancer/strategies/round-robin';
import type { MemberLoad } from '../../src/balancer/strategies/types';

const m = (id: string, load: number, pendingBinds = 0): MemberLoad => ({ id, address: id, load, rawLoad: load, reported: true, pendingBinds, pendingCalls: 0, proxiedInFlight: 0, recentlyShed: false });

describe('least projected load with 5 % ties broken at random', () => {
  it('picks the least loaded', () => {
    expect(chooseLeastLoaded({ members: [m('a', 10), m('b', 5), m('c', 7)], sequence: 0, random: () => 0.99, expectedClientLoad: 1, expectedCallLoad: 1 })).toBe(1);
  });

  it('treats members within 5 % of the least as tied and picks among them uniformly', () => {
    const members = [m('a', 100), m('b', 104), m('c', 106), m('d', 200)];
    // least 100, band up to 105: a and b tied; one draw picks index floor(random() * 2) among them.
    let draws = 0;
    const fixed = (r: number) => () => (draws++, r);
    expect(chooseLeastLoaded({ members, sequence: 0, random: fixed(0.2), expectedClientLoad: 1, expectedCallLoad: 1 })).toBe(0);
    expect(chooseLeastLoaded({ members, sequence: 0, random: fixed(0.99), expectedClientLoad: 1, expectedCallLoad: 1 })).toBe(1);
    expect(draws).toBe(2);
    // A member alone in the band is taken without a draw.
    expect(chooseLeastLoaded({ members: [m('a', 100), m('c', 106)], sequence: 0, random: fixed(0.99), expectedClientLoad: 1, expectedCallLoad: 1 })).toBe(0);
    expect(draws).toBe(2);
    // 1,000 members all tied: still one draw per choice, and the draw's index is the one taken.
    const many = Array.from({ length: 1000 }, (_, i) => m(`m${i}`, 100 + (i % 5) / 10));
    expect(chooseLeastLoaded({ members: many, sequence: 0, random: fixed(0.7345), expectedClientLoad: 1, expectedCallLoad: 1 })).toBe(734);
    expect(draws).toBe(3);
    const rng = seededRandom(11);
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 4000; i++) counts[chooseLeastLoaded({ members, sequence: i, random: rng, expectedClientLoad: 1, expectedCallLoad: 1 })]!++;
    expect(counts[2]).toBe(0);
    expect(counts[3]).toBe(0);
    expect(Math.abs(counts[0]! - counts[1]!)).toBeLessThan(250);
  });

  it('counts binds made since the last report', () => {
    // a: 10 + 3*5 = 25; b: 20.
    expect(chooseLeastLoaded({ members: [m('a', 10, 3), m('b', 20)], sequence: 0, random: () => 0, expectedClientLoad: 5, expectedCallLoad: 1 })).toBe(1);
  });

  it('counts proxied calls since the last report at their own expected load', () => {
    // a: 10 + 2 binds * 5 + 30 calls * 0.5 = 35; b: 30 + 0 = 30 -> b.
    const a = { ...m('a', 10, 2), pendingCalls: 30 };
    expect(chooseLeastLoaded({ members: [a, m('b', 30)], sequence: 0, random: () => 0, expectedClientLoad: 5, expectedCallLoad: 0.5 })).toBe(1);
    // Without the calls a would project 20 and win.
    expect(chooseLeastLoaded({ members: [{ ...a, pendingCalls: 0 }, m('b', 30)], sequence: 0, random: () => 0, expectedClientLoad: 5, expectedCallLoad: 0.5 })).toBe(0);
  });

  it('spreads binds evenly when nothing is known yet', () => {
    const members = [m('a', 0), m('b', 0), m('c', 0)];
    const counts = [0, 0, 0];
    const live = members.map((x) => ({ ...x }));
    for (let i = 0; i < 30; i++) {
      const index = chooseLeastLoaded({ members: live, sequence: i, random: () => 0.3, expectedClientLoad: 1, expectedCallLoad: 1 });
      counts[index]!++;
      live[index]!.pendingBinds++;
    }
    expect(counts).toEqual([10, 10, 10]);
  });
});

describe('round_robin', () => {
  it('takes members in turn and never plans moves', () => {
    const s = roundRobin.create({});
    const members = [m('a', 0), m('b', 0), m('c', 0)];
    expect([0, 1, 2, 3, 4].map((sequence) => s.choose({ members, sequence, random: Math.random, expectedClientLoad: 1, expectedCallLoad: 1 }))).toEqual([0, 1, 2, 0, 1]);
    expect(s.plan({ members, clients: [], nowMs: 0, random: Math.random })).toEqual([]);
  });
});

describe('least projected load from the compact arrays (ChooseInput.compact)', () => {
  /** The same members as objects and as arrays in shuffled slots; both inputs must pick the same member with the same draws. */
  function both(loads: number[], pendingBinds: number[], pendingCalls: number[], seed: number): { objects: [number, number]; compact: [number, number] } {
    const n = loads.length;
    const members = loads.map((load, i) => ({ ...m(`m${i}`, load, pendingBinds[i]), pendingCalls: pendingCalls[i]! }));
    const slots = Int32Array.from({ length: n }, (_, i) => n - 1 - i);
    const compact = { slots, loads: new Float64Array(n), pendingBinds: new Float64Array(n), pendingCalls: new Float64Array(n) };
    for (let i = 0; i < n; i++) {
      compact.loads[slots[i]!] = loads[i]!;
      compact.pendingBinds[slots[i]!] = pendingBinds[i]!;
      compact.pendingCalls[slots[i]!] = pendingCalls[i]!;
    }
    const run = (withCompact: boolean): [number, number] => {
      const rng = seededRandom(seed);
      let draws = 0;
      const random = () => {
        draws++;
        return rng();
      };
      const pick = chooseLeastLoaded({ members, sequence: 0, random, expectedClientLoad: 2.5, expectedCallLoad: 0.1, peerBalancers: 2, compact: withCompact ? compact : undefined });
      return [pick, draws];
    };
    return { objects: run(false), compact: run(true) };
  }

  it('picks what the member objects give, drawing as often, for random loads and for NaN, -0 and infinite ones', () => {
    const rng = seededRandom(5);
    const cases: [number[], number[], number[]][] = [
      [[NaN, 1, 1], [0, 0, 0], [0, 0, 0]],
      [[1, 1, NaN, 1], [0, 0, 0, 0], [0, 0, 0, 0]],
      [[-0, 0, 0], [0, 0, 0], [0, 0, 0]],
      [[0, -0, 1e-10], [0, 0, 0], [0, 0, 0]],
      [[Infinity, Infinity], [0, 0], [0, 0]],
      [[Infinity, 5, Infinity], [0, 1, 0], [0, 0, 0]],
    ];
    for (let c = 0; c < 300; c++) {
      const n = 1 + Math.floor(rng() * 40);
      const pick = (xs: number[]) => xs[Math.floor(rng() * xs.length)]!;
      cases.push([
        Array.from({ length: n }, () => pick([80, 81, 82, 84, 100, 0])),
        Array.from({ length: n }, () => pick([0, 0, 1, 0.5, 2])),
        Array.from({ length: n }, () => pick([0, 0, 3, 10])),
      ]);
    }
    for (const [k, [loads, binds, calls]] of cases.entries()) {
      const r = both(loads, binds, calls, k + 1);
      expect(r.compact, `case ${k}: ${JSON.stringify([loads, binds, calls])}`).toEqual(r.objects);
    }
  });
});

import { describe, expect, it } from 'vitest';
import { planMinimumDispersion, minimumDispersion } from '../../src/balancer/strategies/minimum-dispersion';
import type { ClientLoad, MemberLoad, Move, PlanInput } from '../../src/balancer/strategies/types';

const params = { tolerance: 0.1, minGain: 0.02, maxMoves: 32 };

function member(id: string, load: number): MemberLoad {
  return { id, address: `${id}:1`, load, rawLoad: load, reported: true, pendingBinds: 0, pendingCalls: 0, proxiedInFlight: 0, recentlyShed: false };
}

function input(layout: Record<string, number[]>, held: string[] = []): PlanInput {
  const members: MemberLoad[] = [];
  const clients: ClientLoad[] = [];
  for (const [id, loads] of Object.entries(layout)) {
    members.push(member(id, loads.reduce((a, b) => a + b, 0)));
    loads.forEach((load, i) => clients.push({ clientId: `${id}-c${i}`, memberId: id, load, held: held.includes(`${id}-c${i}`) }));
  }
  return { members, clients, nowMs: 0, random: () => 0.5 };
}

function after(layout: Record<string, number[]>, moves: Move[]): Record<string, number> {
  const loads: Record<string, number> = {};
  for (const [id, l] of Object.entries(layout)) loads[id] = l.reduce((a, b) => a + b, 0);
  for (const m of moves) {
    loads[m.from]! -= m.load;
    loads[m.to]! += m.load;
  }
  return loads;
}

describe('minimum_dispersion planner', () => {
  it("the paper's 200/100/200/100 case: two swaps, every replica at 150, 300 load moved", () => {
    // Clients at 100 and 50 calls/s, bound round-robin: r1={100,100} r2={50,50} r3={100,100} r4={50,50}.
    const layout = { r1: [100, 100], r2: [50, 50], r3: [100, 100], r4: [50, 50] };
    const moves = planMinimumDispersion(input(layout), params);
    expect(after(layout, moves)).toEqual({ r1: 150, r2: 150, r3: 150, r4: 150 });
    expect(moves).toHaveLength(4);
    // Each swap exchanges one 100 client for one 50 client: 150 moved per swap.
    expect(moves.reduce((sum, m) => sum + m.load, 0)).toBe(300);
    // No single move can help here: moving a 100 from 200 to 100 only mirrors the imbalance.
    expect(new Set(moves.map((m) => m.clientId)).size).toBe(4);
  });

  it('4 equal clients on A, empty B: moves exactly two clients', () => {
    const layout = { A: [50, 50, 50, 50], B: [] };
    const moves = planMinimumDispersion(input(layout), params);
    expect(moves).toHaveLength(2);
    expect(moves.every((m) => m.from === 'A' && m.to === 'B')).toBe(true);
    expect(after(layout, moves)).toEqual({ A: 100, B: 100 });
  });

  it('makes no plan while every member is within tolerance of the mean', () => {
    // mean 100; 108 and 92 are within 10 %.
    expect(planMinimumDispersion(input({ A: [58, 50], B: [42, 50] }), params)).toEqual([]);
  });

  it('never moves a held client', () => {
    const layout = { A: [50, 50, 50, 50], B: [] };
    const moves = planMinimumDispersion(input(layout, ['A-c0', 'A-c1', 'A-c2']), params);
    expect(moves.map((m) => m.clientId)).toEqual(['A-c3']);
  });

  it('does not move a client larger than the gap (it would only mirror the imbalance)', () => {
    // A = 130 (one client), B = 70: moving the 130 makes it 0/200.
    expect(planMinimumDispersion(input({ A: [130], B: [70] }), params)).toEqual([]);
  });

  it('prefers the move closest to half the gap', () => {
    // gap 120 (A=160, B=40): the 60 client brings both to 100; 20 and 80 do less.
    const moves = planMinimumDispersion(input({ A: [20, 60, 80], B: [40] }), params);
    expect(moves).toHaveLength(1);
    expect(moves[0]).toMatchObject({ clientId: 'A-c1', from: 'A', to: 'B', load: 60 });
  });

  it('stops as soon as every member is within tolerance (no chasing of noise)', () => {
    // A = 130 (40, 42, 48), B = 50 (50): moving the 40 gives 90/90. A planner that kept
    // optimizing would go on swapping near-equal clients; within tolerance it stops.
    const moves = planMinimumDispersion(input({ A: [40, 42, 48], B: [50] }), params);
    expect(moves).toHaveLength(1);
    expect(moves[0]!.load).toBe(40);
  });

  it('respects maxMoves', () => {
    const layout = { A: Array(20).fill(10), B: [] };
    const moves = planMinimumDispersion(input(layout), { ...params, maxMoves: 3 });
    expect(moves).toHaveLength(3);
  });

  it('stops when the remaining gain is below (minGain x mean)^2', () => {
    // A=106, B=94, mean 100, tolerance 0 forces planning; moving the 6 client gains 2*6*(12-6)=72 >= (0.02*100)^2=4.
    const moves = planMinimumDispersion(input({ A: [100, 6], B: [94] }), { ...params, tolerance: 0 });
    expect(moves).toHaveLength(1);
    // With minGain 0.1, (0.1*100)^2 = 100 > 72: not worth it.
    expect(planMinimumDispersion(input({ A: [100, 6], B: [94] }), { ...params, tolerance: 0, minGain: 0.1 })).toEqual([]);
  });

  it('skips clients with no load and a client as large as the gap', () => {
    const moves = planMinimumDispersion(input({ A: [0, 0, 100], B: [] }), params);
    expect(moves).toEqual([]);
  });

  it('binds new clients to the least projected load', () => {
    const strategy = minimumDispersion.create({ tolerance: 0.1, minGain: 0.02, maxMoves: 32 });
    const members = [member('A', 100), member('B', 40), { ...member('C', 30), pendingBinds: 2 }];
    // C projects 30 + 2*20 = 70, B 40: B wins.
    expect(strategy.choose({ members, sequence: 0, random: () => 0, expectedClientLoad: 20, expectedCallLoad: 1 })).toBe(1);
  });
});

describe('minimum_dispersion planner: shares of divisible clients', () => {
  const ids = ['A', 'B', 'C', 'D', 'E', 'F', 'G', 'H'];
  /** 2 clients of 400 on 8 members, each bound to one member (the few-heavy scenario after its first binds). */
  function fewHeavy(divisible: boolean, k: number, minShare = 0.1): PlanInput {
    const members = ids.map((id) => member(id, id === 'A' || id === 'B' ? 400 : 0));
    const clients: ClientLoad[] = [
      { clientId: 'c1', memberId: 'A', load: 400, held: false, divisible },
      { clientId: 'c2', memberId: 'B', load: 400, held: false, divisible },
    ];
    return { members, clients, nowMs: 0, random: () => 0.5, maxBindingSize: k, minShare };
  }
  function spread(moves: Move[]): { loads: Record<string, number>; bindings: Record<string, Record<string, number>> } {
    const loads: Record<string, number> = Object.fromEntries(ids.map((id) => [id, id === 'A' || id === 'B' ? 400 : 0]));
    const bindings: Record<string, Record<string, number>> = { c1: { A: 400 }, c2: { B: 400 } };
    for (const m of moves) {
      loads[m.from]! -= m.load;
      loads[m.to]! += m.load;
      const b = bindings[m.clientId]!;
      b[m.from]! -= m.load;
      if (b[m.from] === 0) delete b[m.from];
      b[m.to] = (b[m.to] ?? 0) + m.load;
    }
    return { loads, bindings };
  }

  it('spreads 2 clients of 400 over 8 members exactly (100 each), each client on the 4 members its load needs, in 6 share moves', () => {
    const moves = planMinimumDispersion(fewHeavy(true, 4), params);
    expect(moves).toEqual([
      { clientId: 'c1', from: 'A', to: 'F', load: 200 },
      { clientId: 'c2', from: 'B', to: 'E', load: 200 },
      { clientId: 'c1', from: 'A', to: 'D', load: 100 },
      { clientId: 'c2', from: 'B', to: 'C', load: 100 },
      { clientId: 'c2', from: 'E', to: 'G', load: 100 },
      { clientId: 'c1', from: 'F', to: 'H', load: 100 },
    ]);
    const { loads, bindings } = spread(moves);
    expect(Object.values(loads)).toEqual([100, 100, 100, 100, 100, 100, 100, 100]);
    expect(bindings).toEqual({ c1: { A: 100, D: 100, F: 100, H: 100 }, c2: { B: 100, C: 100, E: 100, G: 100 } });
  });

  it('never gives a client more than k members: with k = 2, two halves each (the best k allows)', () => {
    const { loads, bindings } = spread(planMinimumDispersion(fewHeavy(true, 2), params));
    expect(bindings).toEqual({ c1: { A: 200, F: 200 }, c2: { B: 200, E: 200 } });
    expect(loads).toEqual({ A: 200, B: 200, C: 0, D: 0, E: 200, F: 200, G: 0, H: 0 });
  });

  it('moves clients that do not understand sets only whole (none of these can help), and none with k = 1', () => {
    expect(planMinimumDispersion(fewHeavy(false, 4), params)).toEqual([]);
    expect(planMinimumDispersion(fewHeavy(true, 1), params)).toEqual([]);
  });

  it('leaves no dust: a share under minShare of its client is neither created nor left behind', () => {
    // A carries 112 (one divisible client), B 88: the best share move (12, 10.7 % of the client) is allowed at minShare 0.1 ...
    const layout = (minShare: number): PlanInput => ({
      members: [member('A', 112), member('B', 88)],
      clients: [
        { clientId: 'big', memberId: 'A', load: 112, held: false, divisible: true },
        { clientId: 'other', memberId: 'B', load: 88, held: false, divisible: false },
      ],
      nowMs: 0,
      random: () => 0.5,
      maxBindingSize: 4,
      minShare,
    });
    expect(planMinimumDispersion(layout(0.1), { ...params, tolerance: 0.05 })).toEqual([{ clientId: 'big', from: 'A', to: 'B', load: 12 }]);
    // ... and not at minShare 0.2: a share of 12 would be dust.
    expect(planMinimumDispersion(layout(0.2), { ...params, tolerance: 0.05 })).toEqual([]);
  });

  it("the paper's case is planned exactly as before when its clients understand sets (whole moves suffice)", () => {
    const layout = { A: [100, 100], B: [50, 50], C: [100, 100], D: [50, 50] };
    const plain = planMinimumDispersion(input(layout), params);
    const withSets = input(layout);
    const sets = planMinimumDispersion({ ...withSets, clients: withSets.clients.map((c) => ({ ...c, divisible: true })), maxBindingSize: 4 }, params);
    expect(sets).toEqual(plain);
    expect(plain).toHaveLength(4);
  });
});

/**
 * The optimised minimum-dispersion planner decides exactly what the planner
 * before the optimisation did (test/support/minimum-dispersion-reference.ts),
 * on seeded random groups: small ones with integer loads (ties between
 * members and between clients decide by order), large ones (2,000 members,
 * 20,000 clients), clients held, divisible, spread over several members,
 * and every strategy parameter varied.
 */
import { describe, expect, it } from 'vitest';
import { planMinimumDispersion, type MinimumDispersionParams } from '../../src/balancer/strategies/minimum-dispersion';
import type { ClientLoad, MemberLoad, Move, PlanInput } from '../../src/balancer/strategies/types';
import { planMinimumDispersionReference } from '../support/minimum-dispersion-reference';
import { seededRandom } from '../../src/sim/rng';

function member(id: string, load: number): MemberLoad {
  return { id, address: `${id}:1`, load, rawLoad: load, reported: true, pendingBinds: 0, pendingCalls: 0, proxiedInFlight: 0, recentlyShed: false };
}

interface Case {
  input: PlanInput;
  params: MinimumDispersionParams;
}

/** A random group: `members` members, about `perMember` clients each, loads integer (many ties) or not. */
function randomCase(seed: number, members: number, perMember: number): Case {
  const random = seededRandom(seed);
  const pick = <T>(options: readonly T[]): T => options[Math.floor(random() * options.length)]!;
  const integer = random() < 0.5;
  const loadOf = (scale: number) => (integer ? Math.floor(random() * 10) * 10 : Math.round(random() * scale * 1000) / 1000);
  const skew = Array.from({ length: members }, () => pick([0, 0.2, 1, 1, 1, 3]));
  const loads = new Array<number>(members).fill(0);
  const clients: ClientLoad[] = [];
  const count = Math.round(members * perMember);
  for (let c = 0; c < count; c++) {
    let at = Math.floor(random() * members);
    if (random() > skew[at]! / 3) at = Math.floor(random() * members);
    const divisible = random() < 0.4;
    const held = random() < 0.05;
    const spread = divisible && random() < 0.3 ? 2 + Math.floor(random() * 3) : 1;
    const load = loadOf(integer ? 100 : 150 * (random() < 0.02 ? 20 : 1));
    const on = new Set<number>([at]);
    while (on.size < Math.min(spread, members)) on.add(Math.floor(random() * members));
    for (const m of on) {
      const share = integer ? load : load / on.size;
      clients.push({ clientId: `c${c}`, memberId: `m${m}`, load: share, held, divisible });
      loads[m]! += share;
    }
  }
  // Some members carry load no listed client explains (other calls), or list a client of another group's view.
  for (let m = 0; m < members; m++) if (random() < 0.2) loads[m]! += loadOf(50);
  if (random() < 0.1) clients.push({ clientId: 'stray', memberId: 'gone', load: 10, held: false });
  // Client order as a group gives it: member by member (or shuffled: the planner must not depend on it).
  if (random() < 0.7) clients.sort((a, b) => Number(a.memberId.slice(1)) - Number(b.memberId.slice(1)));
  return {
    input: {
      members: loads.map((l, i) => member(`m${i}`, l)),
      clients,
      nowMs: 0,
      random: () => 0.5,
      maxBindingSize: pick([undefined, 1, 2, 4, 16]),
      minShare: pick([undefined, 0, 0.05, 0.2]),
    },
    params: { tolerance: pick([0, 0.05, 0.1, 0.3]), minGain: pick([0, 0.002, 0.02]), maxMoves: pick([1, 2, 3, 32, 32, 200]) },
  };
}

/**
 * The case as a group gives it (the lazy shape): its entries member by
 * member in the members' order (`flat`, for the reference), and the same
 * entries read per member (clientsOf) and per client (entriesOf, in a
 * shuffled order, with entries on members the plan does not have); reading
 * `clients` fails, so the planner must not.
 */
function lazyForm(input: PlanInput, seed: number): { flat: PlanInput; lazy: PlanInput } {
  const random = seededRandom(seed);
  const index = new Map(input.members.map((m, i) => [m.id, i]));
  const byMember: ClientLoad[][] = input.members.map(() => []);
  const byClient = new Map<string, ClientLoad[]>();
  for (const c of input.clients) {
    const i = index.get(c.memberId);
    if (i !== undefined) byMember[i]!.push(c);
    byClient.set(c.clientId, [...(byClient.get(c.clientId) ?? []), c]);
  }
  for (const list of byClient.values()) list.sort(() => random() - 0.5);
  const flat = { ...input, clients: byMember.flat() };
  const lazy: PlanInput = {
    ...input,
    get clients(): readonly ClientLoad[] {
      throw new Error('the planner read every entry');
    },
    clientsOf: (i) => byMember[i]!,
    entriesOf: (id) => byClient.get(id) ?? [],
  };
  return { flat, lazy };
}

function compare(cases: Case[]): { plans: number; shareMoves: number } {
  let plans = 0;
  let shareMoves = 0;
  for (const [n, { input, params }] of cases.entries()) {
    const expected = planMinimumDispersionReference(input, params);
    const actual: Move[] = planMinimumDispersion(input, params);
    // toEqual names the case that differs: the seed's index and its parameters.
    expect({ n, params, moves: actual }).toEqual({ n, params, moves: expected });
    // The same group read lazily plans as the reference does on its entries, member by member.
    const { flat, lazy } = lazyForm(input, n);
    expect({ n, params, lazy: true, moves: planMinimumDispersion(lazy, params) }).toEqual({ n, params, lazy: true, moves: planMinimumDispersionReference(flat, params) });
    if (expected.length > 0) plans++;
    const whole = new Map(input.clients.map((c) => [`${c.clientId}/${c.memberId}`, c.load]));
    shareMoves += expected.filter((m) => whole.get(`${m.clientId}/${m.from}`) !== m.load).length;
  }
  return { plans, shareMoves };
}

describe('minimum_dispersion: the optimised planner plans exactly as the reference', () => {
  it('400 small random groups (2..40 members, integer or fractional loads, every parameter varied)', () => {
    const random = seededRandom(15);
    const cases = Array.from({ length: 400 }, (_, i) => randomCase(1000 + i, 2 + Math.floor(random() * 39), random() * 6));
    const { plans, shareMoves } = compare(cases);
    // The comparison means something only if most cases plan, some with shares.
    expect(plans).toBeGreaterThan(200);
    expect(shareMoves).toBeGreaterThan(50);
  });

  it('large random groups (2,000 members, 20,000 clients)', () => {
    const cases = [1, 2, 3, 4].map((i) => {
      const c = randomCase(77 + i, 2000, 10);
      return { ...c, params: { ...c.params, maxMoves: i === 4 ? 500 : 32 } };
    });
    const { plans } = compare(cases);
    expect(plans).toBe(cases.length);
  });
});

/**
 * The group's compact member store (loads and pending counts in typed
 * arrays, eligible lists cached per path with their slots) must not change
 * which member a bind or a call gets: random sequences of reports, binds,
 * calls, set-aside and avoided members, suspect and draining members, plans,
 * weighted binds, joins, leaves and replacements, compared choice by choice
 * with a frozen copy of the choice as it was (test/support/choose-reference.ts)
 * drawing from a second copy of the same random sequence.
 */
import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { parseBalancerConfig } from '../../src/balancer/config';
import { Member, type AdvisorySink } from '../../src/balancer/member';
import { Registry } from '../../src/balancer/registry';
import { peerCount, type Group } from '../../src/balancer/group';
import type { LoadReport__Output } from '../../src/generated/rebind/v1/LoadReport';
import { seededRandom } from '../../src/sim/rng';
import { referenceChoose } from '../support/choose-reference';

const log = pino({ level: 'silent' });
const INTERVAL_MS = 1000;
const PATHS = ['/p.S/A', '/p.S/B'];
const sink: AdvisorySink = { sendAdvisory: () => true, close: () => {} };

function report(seq: number, clients: ReadonlyMap<string, number>, extraCallsPerS: number, draining: boolean): LoadReport__Output {
  let total = extraCallsPerS;
  const topClients: LoadReport__Output['topClients'] = [];
  for (const [clientId, callsPerS] of clients) {
    total += callsPerS;
    topClients.push({ clientId, callsPerS, sets: false });
  }
  return {
    seq,
    clientCount: clients.size,
    intervalMs: INTERVAL_MS,
    callsPerS: total,
    inFlight: 0,
    latencyMs: 1,
    eventLoopUtilization: 0,
    cpuCores: 0,
    custom: 0,
    hasCustom: false,
    topClients,
    otherCallsPerS: extraCallsPerS,
    forwards: 0,
    draining,
  };
}

/** A seeded random source that counts its draws. */
function counted(seed: number): { next: () => number; draws: () => number } {
  const r = seededRandom(seed);
  let n = 0;
  return {
    next: () => {
      n++;
      return r();
    },
    draws: () => n,
  };
}

/** The group's estimates as Group.choose refreshes them (private: read as the choice does). */
interface Estimates {
  estimatesAtMs: number;
  readonly estimatesMaxAgeMs: number;
  invalidateEstimates(nowMs: number): void;
  expectedClientLoad(): number;
  expectedCallLoad(): number;
}

function run(strategy: 'minimum_dispersion' | 'p2c', seed: number, steps: number): { choices: number; differing: string[] } {
  const parsed = parseBalancerConfig({
    groups: [{ name: 'g', reportIntervalMs: INTERVAL_MS, topClients: 100, strategy, granularity: 'on-demand', planMinCalls: 0, settleReports: 0 }],
  });
  if (!parsed.ok) throw new Error(parsed.errors.join());
  const groupRandom = counted(seed);
  const referenceRandom = counted(seed);
  const registry = new Registry(parsed.value, log, groupRandom.next);
  const group: Group = registry.groups.get('g')!;
  const internals = group as unknown as Estimates;
  const ops = seededRandom(seed * 7919 + 1);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(ops() * xs.length)]!;
  let peers = 1;
  registry.peerBalancers = () => peers;
  let n = 0;
  const attach = (): void => {
    n++;
    const which = ops();
    const paths = which < 0.5 ? PATHS : which < 0.75 ? [PATHS[0]!] : [PATHS[1]!];
    const m = registry.attach({ protocolVersion: 1, group: 'g', address: `10.0.${n >> 8}.${n & 255}:5000`, methods: paths.map((path) => ({ path, kind: 'UNARY' })), replicaId: '', resumeSecret: '' }, sink, now);
    if (!(m instanceof Member)) throw new Error(m.message);
  };
  let now = 0;
  let seq = 0;
  for (let i = 0; i < 6; i++) attach();
  let choices = 0;
  const differing: string[] = [];
  const members = (): Member[] => [...group.members.values()];
  for (let step = 0; step < steps; step++) {
    now += Math.floor(ops() * 120);
    const op = ops();
    const all = members();
    if (op < 0.45) {
      // A bind or a call, compared with the reference.
      const kind = op < 0.3 ? 'bind' : 'call';
      const path = pick(PATHS);
      const clientId = kind === 'bind' && ops() < 0.8 ? `c${Math.floor(ops() * 40)}` : null;
      const avoid = ops() < 0.1 && all.length > 0 ? new Set([pick(all).address, ...(ops() < 0.3 ? ['10.9.9.9:1'] : [])]) : undefined;
      const caller = ops() < 0.5 ? `caller${Math.floor(ops() * 3)}` : undefined;
      peers = pick([1, 1, 2, 3, 0]);
      if (avoid !== undefined && kind === 'bind' && clientId !== null) for (const address of avoid) group.noteAvoided(address, clientId, now);
      if (now - internals.estimatesAtMs >= internals.estimatesMaxAgeMs) internals.invalidateEstimates(now);
      const view = {
        members: group.members,
        recentMemberId: (id: string, at: number) => group.ledger.recentBinding(id, at)?.members[0]?.memberId,
        expectedClientLoad: internals.expectedClientLoad(),
        expectedCallLoad: internals.expectedCallLoad(),
        peerBalancers: peerCount(peers),
      };
      const expected = referenceChoose(view, strategy === 'p2c' ? 'p2c' : 'least', path, kind, clientId, now, avoid, referenceRandom.next);
      const got = group.choose(path, kind, clientId, now, avoid, caller);
      choices++;
      if (got !== expected || groupRandom.draws() !== referenceRandom.draws()) {
        differing.push(`step ${step}: ${kind} ${path}: got ${got?.id ?? 'none'}, reference ${expected?.id ?? 'none'} (draws ${groupRandom.draws()} vs ${referenceRandom.draws()})`);
        // Realign the reference's random sequence so one difference does not hide the next.
        while (referenceRandom.draws() < groupRandom.draws()) referenceRandom.next();
      }
    } else if (op < 0.65 && all.length > 0) {
      // A report: loads from a few values, so that ties within the band are common.
      const m = pick(all);
      const clients = new Map<string, number>();
      const k = Math.floor(ops() * 4);
      for (let c = 0; c < k; c++) clients.set(`c${Math.floor(ops() * 40)}`, pick([5, 10, 10.4, 20]));
      group.applyReport(m, report(++seq, clients, pick([0, 1, 10, 10.2, 30]), ops() < 0.03), now);
    } else if (op < 0.7 && all.length > 0) {
      group.suspect(pick(all));
    } else if (op < 0.75 && all.length >= 2) {
      // A weighted bind: fractional pending shares on two members.
      const a = pick(all);
      const b = pick(all.filter((m) => m !== a));
      const share = pick([0.25, 0.5, 0.3]);
      group.ledger.bound(ops() < 0.5 ? `w${Math.floor(ops() * 10)}` : null, [{ memberId: a.id, share }, { memberId: b.id, share: 1 - share }], now);
    } else if (op < 0.79) {
      group.plan(now);
    } else if (op < 0.82 && all.length > 0) {
      group.noteAvoided(pick(all).address, `c${Math.floor(ops() * 40)}`, now);
    } else if (op < 0.86 && all.length > 1) {
      registry.detach(pick(all), 'test');
    } else if (op < 0.9 && all.length < 14) {
      attach();
    } else if (op < 0.91 && all.length > 0) {
      // The same member id attached anew (a replacement): the old object leaves the store, the new one takes over.
      const old = pick(all);
      group.addMember(new Member(old.id, 'g', old.address, old.methods, sink, now));
    }
  }
  expect(group.storeSlots).toBe(group.members.size);
  return { choices, differing };
}

describe('Group.choose with the compact member store', () => {
  for (const strategy of ['minimum_dispersion', 'p2c'] as const) {
    it(`${strategy}: picks the member the frozen reference picks, with the same random draws, over random sequences`, () => {
      let choices = 0;
      for (let seed = 1; seed <= 6; seed++) {
        const r = run(strategy, seed, 3000);
        expect(r.differing.slice(0, 5)).toEqual([]);
        choices += r.choices;
      }
      expect(choices).toBeGreaterThan(6000);
    });
  }
});

/**
 * Herding between balancers (issue 14): three balancers bind from the same
 * reports, each knowing only its own binds since the last report. A member
 * that joined empty must not get every balancer's whole catch-up.
 */
import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { parseBalancerConfig } from '../../src/balancer/config';
import { peerCount } from '../../src/balancer/group';
import { Member, type AdvisorySink } from '../../src/balancer/member';
import { Registry } from '../../src/balancer/registry';
import type { LoadReport__Output } from '../../src/generated/rebind/v1/LoadReport';
import { seededRandom } from '../../src/sim/rng';

const log = pino({ level: 'silent' });
const sink: AdvisorySink = { sendAdvisory: () => true, close: () => undefined };
const ADDRESSES = ['10.0.0.1:1', '10.0.0.2:1', '10.0.0.3:1', '10.0.0.4:1'];

function report(seq: number, clients: Record<string, number>): LoadReport__Output {
  const total = Object.values(clients).reduce((a, b) => a + b, 0);
  return {
    seq, clientCount: Object.keys(clients).length, intervalMs: 100, callsPerS: total, inFlight: 0, latencyMs: 1, eventLoopUtilization: 0, cpuCores: 0,
    custom: 0, hasCustom: false, topClients: Object.entries(clients).map(([clientId, callsPerS]) => ({ clientId, callsPerS, sets: false })),
    otherCallsPerS: 0, forwards: 0, draining: false,
  };
}

/**
 * One balancer that has seen r1..r3 carry 4 clients of 20 calls/s each and
 * r4 join empty (the same reports every balancer of the set gets).
 */
function balancer(strategy: string, seed: number, peers?: number) {
  const parsed = parseBalancerConfig({ groups: [{ name: 'g', reportIntervalMs: 100, metric: 'calls_per_s', strategy: { name: strategy } }] });
  if (!parsed.ok) throw new Error(parsed.errors.join());
  const registry = new Registry(parsed.value, log, seededRandom(seed));
  if (peers !== undefined) registry.peerBalancers = () => peers;
  const members = ADDRESSES.map((address) => {
    const m = registry.attach({ protocolVersion: 1, group: 'g', address, methods: [{ path: '/p.S/M', kind: 'UNARY' }], replicaId: '', resumeSecret: '' }, sink, 0);
    if (!(m instanceof Member)) throw new Error(m.message);
    return m;
  });
  const group = registry.groups.get('g')!;
  for (let seq = 1; seq <= 30; seq++) {
    members.forEach((m, i) => {
      const clients = i === 3 ? {} : Object.fromEntries([0, 1, 2, 3].map((c) => [`resident-${i}-${c}`, 20]));
      group.applyReport(m, report(seq, clients), seq * 100);
    });
  }
  return { group, members };
}

/** `binding` balancers each bind `perBalancer` new clients before the next report; clients per member after (resident 4 + new). */
function burst(strategy: string, peers: number | undefined, perBalancer = 4, binding = 3): number[] {
  const totals = [4, 4, 4, 0];
  for (let b = 0; b < binding; b++) {
    const { group, members } = balancer(strategy, 100 + b, peers);
    for (let c = 0; c < perBalancer; c++) {
      const chosen = group.choose('/p.S/M', 'bind', `new-${b}-${c}`, 3050);
      totals[members.indexOf(chosen!)]!++;
    }
  }
  return totals;
}

describe('binds from several balancers do not herd onto a member that joined empty', () => {
  for (const strategy of ['minimum_dispersion', 'least_loaded']) {
    it(`${strategy}: with registry.peerBalancers = 3, the empty member gets its share of a burst through three balancers, not all of it`, () => {
      // Ideal: 24 clients, 6 each; r4 (empty) takes 6 of the 12 new ones.
      const herded = burst(strategy, undefined);
      expect(herded).toEqual([4, 4, 4, 12]); // one balancer's view: each of the three sends its 4 to r4
      const spread = burst(strategy, 3);
      expect(spread[3]).toBe(6);
      // The other 6 go to r1..r3, each balancer choosing among them at random: at most 7 on one.
      expect(Math.max(...spread)).toBeLessThanOrEqual(7);
    });
  }

  it('one balancer alone (peerBalancers 1, the default) still fills the empty member as before', () => {
    expect(burst('minimum_dispersion', undefined, 12, 1)).toEqual([6, 6, 6, 6]);
  });

  it('a peer count that is not a positive number counts as 1; at most MAX_BALANCERS', () => {
    expect([peerCount(Number.NaN), peerCount(0), peerCount(-3), peerCount(2.7), peerCount(3), peerCount(1000)]).toEqual([1, 1, 1, 2, 3, 16]);
  });
});

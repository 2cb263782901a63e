/**
 * The group's client index (client id -> members it has an entry on), kept
 * up to date as reports, LRS loads and plans arrive, has exactly the
 * entries of the members' client maps at every step: a client that leaves
 * every member (dropped from reports, LRS gone quiet, its member removed)
 * leaves the index; nothing leaks once every client and member is gone.
 */
import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { parseBalancerConfig } from '../../src/balancer/config';
import { Member, type AdvisorySink } from '../../src/balancer/member';
import { Registry } from '../../src/balancer/registry';
import type { Group } from '../../src/balancer/group';
import type { LoadReport__Output } from '../../src/generated/rebind/v1/LoadReport';
import { seededRandom } from '../../src/sim/rng';

const log = pino({ level: 'silent' });
const INTERVAL_MS = 1000;

const sink: AdvisorySink = { sendAdvisory: () => true, close: () => {} };

function report(seq: number, clients: ReadonlyMap<string, number>, sets: boolean): LoadReport__Output {
  let total = 0;
  const topClients: LoadReport__Output['topClients'] = [];
  for (const [clientId, callsPerS] of clients) {
    total += callsPerS;
    topClients.push({ clientId, callsPerS, sets });
  }
  return {
    seq,
    clientCount: clients.size,
    intervalMs: INTERVAL_MS,
    callsPerS: total + 1,
    inFlight: 0,
    latencyMs: 1,
    eventLoopUtilization: 0,
    cpuCores: 0,
    custom: 0,
    hasCustom: false,
    topClients,
    otherCallsPerS: 1,
    forwards: 0,
    draining: false,
  };
}

function setup() {
  const parsed = parseBalancerConfig({
    groups: [{ name: 'g', reportIntervalMs: INTERVAL_MS, topClients: 1000, strategy: 'minimum_dispersion', planMinCalls: 0, settleReports: 0 }],
  });
  if (!parsed.ok) throw new Error(parsed.errors.join());
  const registry = new Registry(parsed.value, log, seededRandom(3));
  const group = registry.groups.get('g')!;
  let n = 0;
  const attach = (): Member => {
    n++;
    const m = registry.attach({ protocolVersion: 1, group: 'g', address: `10.0.0.${n}:5000`, methods: [{ path: '/p.S/M', kind: 'UNARY' }], replicaId: '', resumeSecret: '' }, sink, 0);
    if (!(m instanceof Member)) throw new Error(m.message);
    return m;
  };
  return { registry, group, attach };
}

/** The index as the members' client maps say it should be: client -> member ids, sorted. */
function expectedIndex(group: Group): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const m of group.members.values()) for (const id of m.clients.keys()) out.set(id, [...(out.get(id) ?? []), m.id].sort());
  return out;
}

function actualIndex(group: Group, ids: Iterable<string>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const id of ids) {
    const on = group.membersOfClient(id);
    if (on !== undefined) out.set(id, on.map((m) => m.id).sort());
  }
  return out;
}

describe('group client index', () => {
  it('follows reports, LRS loads, plans and member removal, and is empty once clients and members are gone', () => {
    const { registry, group, attach } = setup();
    const random = seededRandom(42);
    const members = Array.from({ length: 6 }, attach);
    const reported = Array.from({ length: 60 }, (_, i) => `c${i}`);
    const everyId = [...reported, 'xds0', 'xds1', 'xds2', 'last'];
    let seq = 0;
    let now = 0;
    const check = () => {
      const expected = expectedIndex(group);
      expect(group.indexedClients).toBe(expected.size);
      expect(actualIndex(group, everyId)).toEqual(expected);
    };
    let planned = 0;
    for (let round = 0; round < 12; round++) {
      now += INTERVAL_MS;
      seq++;
      for (const [k, m] of members.entries()) {
        if (!group.members.has(m.id)) continue;
        // Skewed: the first member gets most clients, so plans move some.
        const clients = new Map<string, number>();
        for (const id of reported) if (random() < (k === 0 ? 0.5 : 0.08)) clients.set(id, 1 + Math.floor(random() * 20));
        group.applyReport(m, report(seq, clients, random() < 0.5), now);
        check();
      }
      // An xDS client's load arrives by LRS, and goes once LRS stops telling it (3 intervals).
      if (round < 3) group.applyXdsLoad(members[1]!, `xds${round}`, 50, now);
      check();
      planned += group.plan(now + 1).length;
      check();
      if (round === 8) {
        registry.detach(members[2]!, 'test');
        check();
      }
    }
    expect(planned).toBeGreaterThan(0);
    expect(group.indexedClients).toBeGreaterThan(0);
    // Every client leaves every member's report: the index empties (transits aside, which the reports settle).
    for (let r = 0; r < 6; r++) {
      now += INTERVAL_MS;
      seq++;
      for (const m of members) if (group.members.has(m.id)) group.applyReport(m, report(seq, new Map(), false), now + 100_000);
      check();
    }
    expect(group.indexedClients).toBe(0);
    // A member that leaves takes its clients out of the index.
    now += INTERVAL_MS;
    group.applyReport(members[0]!, report(++seq, new Map([['last', 5]]), false), now + 100_000);
    expect(group.indexedClients).toBe(1);
    for (const m of members) if (group.members.has(m.id)) registry.detach(m, 'test');
    expect(group.members.size).toBe(0);
    expect(group.indexedClients).toBe(0);
    expect(group.membersOfClient('last')).toBeUndefined();
  });
});

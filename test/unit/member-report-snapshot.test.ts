/**
 * A member's latest report is a snapshot the member owns (member.keepReport):
 * the Control stream decodes every replica's report into one reused scratch
 * (decodeReplicaMessageInto), so the group must not keep the report object it
 * is given. The snapshot is reused from report to report (no new object graph
 * per report that would live a report interval).
 */
import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { parseBalancerConfig } from '../../src/balancer/config';
import { keepReport, Member, type AdvisorySink } from '../../src/balancer/member';
import { Registry } from '../../src/balancer/registry';
import { decodeReplicaMessage, decodeReplicaMessageInto, newReplicaMessageScratch } from '../../src/balancer/replica-message-codec';
import { controlProto } from '../../src/common/proto';
import type { LoadReport__Output } from '../../src/generated/rebind/v1/LoadReport';
import { seededRandom } from '../../src/sim/rng';

const log = pino({ level: 'silent' });
const sink: AdvisorySink = { sendAdvisory: () => true, close: () => {} };
const serialize = (message: object): Buffer => controlProto().rebind.v1.Control.service.Attach.requestSerialize(message as never);

function setup() {
  const parsed = parseBalancerConfig({ groups: [{ name: 'g', reportIntervalMs: 1000, strategy: 'minimum_dispersion' }] });
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
  return { group, attach };
}

const reportBytes = (seq: number, callsPerS: number, ids: string[]) =>
  serialize({ report: { seq, intervalMs: 1000, callsPerS, latencyMs: 2, clientCount: ids.length, topClients: ids.map((clientId, i) => ({ clientId, callsPerS: i + 1, sets: i % 2 === 0 })) } });

describe('member.latest: a snapshot the member owns', () => {
  it('a report object changed after it was applied does not change member.latest', () => {
    const { group, attach } = setup();
    const m = attach();
    const r = decodeReplicaMessage(reportBytes(1, 10, ['client-aaaaaaaa', 'client-bbbbbbbb'])).report!;
    const expected = structuredClone(r);
    group.applyReport(m, r, 1000);
    r.callsPerS = 99;
    r.topClients[0]!.clientId = 'client-zzzzzzzz';
    r.topClients.pop();
    expect(m.latest).toEqual(expected);
  });

  it('reports of two members decoded into one scratch: each keeps its own', () => {
    const { group, attach } = setup();
    const a = attach();
    const b = attach();
    const scratch = newReplicaMessageScratch();
    const bytesA = reportBytes(1, 10, ['client-aaaaaaaa', 'client-bbbbbbbb', 'client-cccccccc']);
    const bytesB = reportBytes(1, 20, ['client-dddddddd']);
    group.applyReport(a, decodeReplicaMessageInto(bytesA, scratch).report!, 1000);
    group.applyReport(b, decodeReplicaMessageInto(bytesB, scratch).report!, 1000);
    expect(a.latest).toEqual(decodeReplicaMessage(bytesA).report);
    expect(b.latest).toEqual(decodeReplicaMessage(bytesB).report);
    expect([...a.clients.keys()].sort()).toEqual(['client-aaaaaaaa', 'client-bbbbbbbb', 'client-cccccccc']);
  });

  it('the snapshot object is reused from report to report, with fewer or more top clients', () => {
    const { group, attach } = setup();
    const m = attach();
    const scratch = newReplicaMessageScratch();
    group.applyReport(m, decodeReplicaMessageInto(reportBytes(1, 10, ['client-aaaaaaaa', 'client-bbbbbbbb']), scratch).report!, 1000);
    const snapshot = m.latest;
    for (const [seq, ids] of [[2, ['client-bbbbbbbb']], [3, []], [4, ['client-cccccccc', 'client-aaaaaaaa', 'client-dddddddd']]] as const) {
      const bytes = reportBytes(seq, seq * 10, [...ids]);
      group.applyReport(m, decodeReplicaMessageInto(bytes, scratch).report!, 1000 * seq);
      expect(m.latest).toBe(snapshot);
      expect(m.latest).toEqual(decodeReplicaMessage(bytes).report);
    }
  });

  it('keepReport of a copy made by spreading the snapshot (sharing its list) gives that copy, unshared', () => {
    const r = decodeReplicaMessage(reportBytes(1, 10, ['client-aaaaaaaa', 'client-bbbbbbbb'])).report!;
    const kept = keepReport(null, r);
    const spread: LoadReport__Output = { ...kept, seq: 2, draining: true };
    const again = keepReport(kept, spread);
    expect(again).toBe(kept);
    expect(again).toEqual(spread);
    spread.topClients.pop();
    expect(again.topClients).toHaveLength(2);
  });
});

/**
 * Key chains on the control path (issue 14): the analyzer puts the ring's
 * chain on every advisory; the replica keeps the latest (validated,
 * bounded) and sends it beside every voucher.
 */
import pino from 'pino';
import { VirtualAction, VirtualTimeScheduler } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { Analyzer } from '../../src/balancer/analyzer';
import { parseBalancerConfig } from '../../src/balancer/config';
import { Member, type AdvisorySink } from '../../src/balancer/member';
import { Registry } from '../../src/balancer/registry';
import type { Advisory } from '../../src/generated/rebind/v1/Advisory';
import { Voucher } from '../../src/balancer/vouch';
import { KEY_CHAIN_TRAILER, MAX_KEY_CHAIN_CHARS, VOUCH_TRAILER } from '../../src/common/wire';
import { forwardStatus } from '../../src/interceptors/server-interceptor';
import { sanitizeAdvisory } from '../../src/replica/advisory';
import { ForwardTable, isPiggyBack, type ForwardDecision } from '../../src/replica/forward-table';

const SET = '10.0.0.2:80=500,10.0.0.3:80=500';
const base = { seq: 1, recallAll: false, expireMs: 1000, offerBinding: '', offerVouch: '', offerExpireMs: 0 };

function chainOf(rotations: number): string {
  const voucher = new Voucher();
  for (let i = 0; i < rotations; i++) voucher.rotate();
  return voucher.chain;
}

describe('key chain on advisories', () => {
  it("every advisory carries the ring's chain in force when it is sent", () => {
    const parsed = parseBalancerConfig({ groups: [{ name: 'g', reportIntervalMs: 100 }] });
    if (!parsed.ok) throw new Error(parsed.errors.join());
    const log = pino({ level: 'silent' });
    const registry = new Registry(parsed.value, log, () => 0.5);
    const voucher = new Voucher();
    const analyzer = new Analyzer(registry, new VirtualTimeScheduler(VirtualAction, 1000), log, {}, voucher);
    const sent: Advisory[] = [];
    const sink: AdvisorySink = { sendAdvisory: (a) => (sent.push(a), true), close: () => undefined };
    const member = registry.attach({ protocolVersion: 1, group: 'g', address: '10.0.0.1:1', methods: [{ path: '/p.S/M', kind: 'UNARY' }], replicaId: '', resumeSecret: '' }, sink, 0);
    if (!(member instanceof Member)) throw new Error(member.message);
    const group = registry.groups.get('g')!;
    analyzer.sendRecall(group, true);
    expect(sent.at(-1)!.keyChain).toBe('');
    voucher.rotate();
    voucher.rotate();
    analyzer.sendRecall(group, false);
    expect(sent.at(-1)!.keyChain).toBe(voucher.chain);
    expect(voucher.chain.split(',')).toHaveLength(2);
  });
});

describe('key chain on the replica', () => {
  it('keeps a well-formed chain and drops a malformed or oversized one, saying why', () => {
    const chain = chainOf(2);
    expect(sanitizeAdvisory({ ...base, moves: [], keyChain: chain })).toEqual({ advisory: { ...base, moves: [], keyChain: chain }, problems: [] });
    const bad = sanitizeAdvisory({ ...base, moves: [], keyChain: `${chain},junk` });
    expect(bad.advisory.keyChain).toBe('');
    expect(bad.problems).toEqual(['advisory key_chain: key chain entry 2 is not of the form publicKey.signature; no key chain sent with vouchers']);
    const long = sanitizeAdvisory({ ...base, moves: [], keyChain: 'x'.repeat(MAX_KEY_CHAIN_CHARS + 1) });
    expect(long.advisory.keyChain).toBe('');
    expect(long.problems[0]).toMatch(/characters long/);
    // An advisory from a balancer without key rings: no chain.
    expect(sanitizeAdvisory({ ...base, moves: [] }).advisory.keyChain).toBe('');
  });

  it("sends the latest advisory's chain beside every voucher: forward, piggy-backed move, offer", () => {
    const table = new ForwardTable(() => 0);
    const first = chainOf(1);
    const latest = chainOf(2);
    table.apply({
      ...base,
      keyChain: first,
      moves: [
        { clientId: 'client-one', target: '10.0.0.2:80', vouch: 'v-target', binding: '', bindingVouch: '' },
        { clientId: 'client-two', target: '10.0.0.2:80', vouch: 'v-target', binding: SET, bindingVouch: 'v-set' },
        { clientId: 'client-back', target: '', vouch: '', binding: '', bindingVouch: '' },
      ],
    });
    table.apply({ ...base, seq: 2, moves: [], keyChain: latest, offerBinding: SET, offerVouch: 'v-offer', offerExpireMs: 500 });
    const forward = table.take('client-one') as ForwardDecision;
    expect(forward).toEqual({ target: '10.0.0.2:80', reason: 'advisory', vouch: 'v-target', chain: latest });
    const status = forwardStatus(forward);
    expect(status.metadata.get(VOUCH_TRAILER)).toEqual(['v-target']);
    expect(status.metadata.get(KEY_CHAIN_TRAILER)).toEqual([latest]);
    expect(table.take('client-two', true)).toMatchObject({ kind: 'move', vouch: 'v-set', chain: latest });
    const offer = table.take('client-new', true)!;
    expect(isPiggyBack(offer) && offer.kind === 'offer' && offer.chain).toBe(latest);
    // No voucher, no chain: a forward back to the balancer carries neither.
    const back = forwardStatus(table.take('client-back') as ForwardDecision);
    expect(back.metadata.get(KEY_CHAIN_TRAILER)).toEqual([]);
  });

  it('sends no chain trailer while the balancer has a ring of one key', () => {
    const table = new ForwardTable(() => 0);
    table.apply({ ...base, keyChain: '', moves: [{ clientId: 'client-one', target: '10.0.0.2:80', vouch: 'v', binding: '', bindingVouch: '' }] });
    const forward = table.take('client-one') as ForwardDecision;
    expect(forward).toEqual({ target: '10.0.0.2:80', reason: 'advisory', vouch: 'v' });
    expect(forwardStatus(forward).metadata.get(KEY_CHAIN_TRAILER)).toEqual([]);
  });
});

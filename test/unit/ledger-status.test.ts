/**
 * What operators are shown of a group's ledger and last plan (admin API,
 * dashboard, status), with exact numbers: the most recent bindings first,
 * bounded whatever the ledger holds, member ids resolved to addresses (a
 * member that left keeps its id), shares in per-mille, the size histogram,
 * and the last plan with its moves bounded.
 */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { DEFAULT_BINDINGS_SHOWN, ledgerStatus, MAX_BINDINGS_SHOWN, MAX_PLAN_MOVES_SHOWN, parseBindingsShown } from '../../src/balancer/admin';
import { builtinGroupDefaults } from '../../src/balancer/config';
import { Group } from '../../src/balancer/group';
import { MAX_REMEMBERED_BINDINGS } from '../../src/balancer/ledger';
import { Member, type AdvisorySink } from '../../src/balancer/member';
import { isRefusal } from '../../src/balancer/validate';

const sink: AdvisorySink = { sendAdvisory: () => true, close: () => undefined };

function setup(): Group {
  const group = new Group({ name: 'g', ...builtinGroupDefaults(), strategy: { name: 'round_robin', params: {} } }, pino({ level: 'silent' }));
  for (const [id, port] of [['m1', 7001], ['m2', 7002], ['m3', 7003]] as const) {
    group.addMember(new Member(id, 'g', `127.0.0.1:${port}`, [{ path: '/p.S/M', kind: 'UNARY' } as never], sink, 0));
  }
  return group;
}

describe('ledgerStatus: bindings', () => {
  it('lists the most recent bindings first, with addresses, per-mille shares, time and how each was made', () => {
    const group = setup();
    group.ledger.bound('c1', 'm1', 1000);
    group.ledger.bound('c2', [{ memberId: 'm1', share: 0.25 }, { memberId: 'm2', share: 0.75 }], 2000, undefined, 'avoid');
    group.ledger.planned('c3', [{ memberId: 'm2', share: 0.5 }, { memberId: 'm3', share: 0.5 }], 3000);
    group.ledger.bound('c1', 'm3', 4000); // re-bound: now the most recent
    const status = ledgerStatus(group, 10);
    expect(status.bindingCount).toBe(3);
    expect(status.bindingSizes).toEqual([0, 1, 2]);
    expect(status.bindings).toEqual([
      { clientId: 'c1', members: [{ memberId: 'm3', address: '127.0.0.1:7003', permille: 1000 }], sinceUnixMs: 4000, via: 'bind' },
      {
        clientId: 'c3',
        members: [
          { memberId: 'm2', address: '127.0.0.1:7002', permille: 500 },
          { memberId: 'm3', address: '127.0.0.1:7003', permille: 500 },
        ],
        sinceUnixMs: 3000,
        via: 'plan',
      },
      {
        clientId: 'c2',
        members: [
          { memberId: 'm1', address: '127.0.0.1:7001', permille: 250 },
          { memberId: 'm2', address: '127.0.0.1:7002', permille: 750 },
        ],
        sinceUnixMs: 2000,
        via: 'avoid',
      },
    ]);
    expect(ledgerStatus(group, 1).bindings.map((b) => b.clientId)).toEqual(['c1']);
    expect(ledgerStatus(group, 0).bindings).toEqual([]);
  });

  it('a member that left shows its id and no address', () => {
    const group = setup();
    group.ledger.bound('c1', 'm2', 0);
    group.removeMember('m2');
    expect(ledgerStatus(group, 5).bindings[0]!.members).toEqual([{ memberId: 'm2', address: '', permille: 1000 }]);
  });

  it('more bindings than asked for: exactly as many as asked, the most recent, and the total', () => {
    const group = setup();
    const n = MAX_BINDINGS_SHOWN + 500;
    for (let i = 0; i < n; i++) group.ledger.bound(`client-${i}`, `m${(i % 3) + 1}`, i);
    const status = ledgerStatus(group, MAX_BINDINGS_SHOWN);
    expect(status.bindingCount).toBe(n);
    expect(status.bindings).toHaveLength(MAX_BINDINGS_SHOWN);
    expect(status.bindings[0]!.clientId).toBe(`client-${n - 1}`);
    expect(status.bindings.at(-1)!.clientId).toBe(`client-${n - MAX_BINDINGS_SHOWN}`);
    expect(status.bindingSizes).toEqual([0, n]);
  });

  it('a full ledger (100,000 clients) still answers with a bounded list', () => {
    const group = setup();
    for (let i = 0; i < MAX_REMEMBERED_BINDINGS + 10; i++) group.ledger.bound(`client-${i}`, 'm1', i);
    const status = ledgerStatus(group, MAX_BINDINGS_SHOWN);
    expect(status.bindingCount).toBe(MAX_REMEMBERED_BINDINGS);
    expect(status.bindings).toHaveLength(MAX_BINDINGS_SHOWN);
    expect(status.bindings[0]!.clientId).toBe(`client-${MAX_REMEMBERED_BINDINGS + 9}`);
    expect(ledgerStatus(group, DEFAULT_BINDINGS_SHOWN).bindings).toHaveLength(DEFAULT_BINDINGS_SHOWN);
  });

  it('how many bindings may be asked for: an integer 0..MAX_BINDINGS_SHOWN', () => {
    expect(parseBindingsShown(0)).toBe(0);
    expect(parseBindingsShown(MAX_BINDINGS_SHOWN)).toBe(MAX_BINDINGS_SHOWN);
    for (const bad of [MAX_BINDINGS_SHOWN + 1, -1, 2.5, Number.NaN]) {
      const r = parseBindingsShown(bad);
      expect(isRefusal(r), String(bad)).toBe(true);
      if (isRefusal(r)) expect(r.message).toContain(`bindings must be an integer 0..${MAX_BINDINGS_SHOWN}`);
    }
  });
});

describe('ledgerStatus: last plan', () => {
  it('is null before the first plan', () => {
    expect(ledgerStatus(setup(), 0).lastPlan).toBeNull();
  });

  it('shows its time, dispersion before and after, and its moves with addresses, at most MAX_PLAN_MOVES_SHOWN', () => {
    const group = setup();
    group.removeMember('m3');
    const moves = Array.from({ length: MAX_PLAN_MOVES_SHOWN + 20 }, (_, i) => ({ clientId: `c${i}`, from: 'm1', to: i === 0 ? 'm3' : 'm2', load: 2.5 }));
    group.lastPlan = { atMs: 5000, moves, bindings: [], dispersionBefore: 80_000, dispersionAfter: 20_000 };
    const plan = ledgerStatus(group, 0).lastPlan!;
    expect(plan).toMatchObject({ atUnixMs: 5000, moveCount: MAX_PLAN_MOVES_SHOWN + 20, dispersionBefore: 80_000, dispersionAfter: 20_000 });
    expect(plan.moves).toHaveLength(MAX_PLAN_MOVES_SHOWN);
    expect(plan.moves.slice(0, 2)).toEqual([
      { clientId: 'c0', fromMemberId: 'm1', fromAddress: '127.0.0.1:7001', toMemberId: 'm3', toAddress: '', load: 2.5 },
      { clientId: 'c1', fromMemberId: 'm1', fromAddress: '127.0.0.1:7001', toMemberId: 'm2', toAddress: '127.0.0.1:7002', load: 2.5 },
    ]);
  });
});

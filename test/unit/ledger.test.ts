/**
 * The binding ledger on its own, with exact numbers: each table's bound and
 * eviction rule, re-bind counting, racing binds within one report interval,
 * holds, transits, pending credit per caller and its window, and forgetting
 * a member.
 */
import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { builtinGroupDefaults } from '../../src/balancer/config';
import { Group } from '../../src/balancer/group';
import { BindingLedger, MAX_CREDIT_CALLERS, MAX_RECENT_BINDS, MAX_REMEMBERED_BINDINGS, type Transit } from '../../src/balancer/ledger';

import { Member, type AdvisorySink } from '../../src/balancer/member';
import type { LoadReport__Output } from '../../src/generated/rebind/v1/LoadReport';

const INTERVAL_MS = 1000;
const ledger = () => new BindingLedger(() => INTERVAL_MS);
const transit = (from: string, to: string, load: number, untilMs: number): Transit => ({
  legs: new Map([
    [from, { load: 0, reportsListing: 0, left: false }],
    [to, { load, reportsListing: 0, left: false }],
  ]),
  untilMs,
});
const leftSource = (t: Transit | undefined, from = 'a') => t?.legs.get(from)?.left;
const reportsAtTarget = (t: Transit | undefined, to = 'b') => t?.legs.get(to)?.reportsListing;

describe('BindingLedger: bindings', () => {
  it('records a bind as a one-member binding with share 1, its time and how it was made', () => {
    const l = ledger();
    expect(l.bound('c1', 'm1', 250)).toEqual({ credited: true, rebind: false });
    expect(l.bindingOf('c1')).toEqual({ members: [{ memberId: 'm1', share: 1 }], sinceMs: 250, via: 'bind' });
    l.bound('c2', 'm2', 300, undefined, 'avoid');
    expect(l.bindingOf('c2')?.via).toBe('avoid');
    expect(l.bindingCount).toBe(2);
  });

  it("binds to one member share that member's members list (no array and share allocated per bind), and a member that left gets a new one", () => {
    const l = ledger();
    l.bound('c1', 'm1', 0);
    l.bound('c2', 'm1', 10);
    l.bound('c3', 'm2', 20);
    expect(l.bindingOf('c2')!.members).toBe(l.bindingOf('c1')!.members);
    expect(l.bindingOf('c3')!.members).not.toBe(l.bindingOf('c1')!.members);
    expect(Object.isFrozen(l.bindingOf('c1')!.members[0])).toBe(true);
    l.forgetMember('m1');
    l.bound('c4', 'm1', 30);
    expect(l.bindingOf('c4')!.members).not.toBe(l.bindingOf('c1')!.members);
    expect(l.bindingOf('c4')!.members).toEqual([{ memberId: 'm1', share: 1 }]);
  });

  it('counts a re-bind only when the member changes', () => {
    const l = ledger();
    expect(l.bound('c1', 'm1', 0).rebind).toBe(false);
    expect(l.bound('c1', 'm1', 5000).rebind).toBe(false);
    expect(l.bound('c1', 'm2', 10_000).rebind).toBe(true);
    expect(l.bound('c1', 'm2', 15_000).rebind).toBe(false);
    expect(l.bound('c1', 'm1', 20_000).rebind).toBe(true);
    expect(l.bindingOf('c1')?.sinceMs).toBe(20_000);
    expect(l.bindingCount).toBe(1);
  });

  it('a bind without a client id is only pending: nothing is remembered', () => {
    const l = ledger();
    expect(l.bound(null, 'm1', 0, 'caller-a')).toEqual({ credited: true, rebind: false });
    expect(l.bindingCount).toBe(0);
    expect(l.recentCount).toBe(0);
    expect(l.pendingFor('m1').binds).toBe(1);
  });

  it(`remembers ${MAX_REMEMBERED_BINDINGS} bindings and forgets the least recently bound first`, () => {
    const l = ledger();
    for (let i = 0; i < MAX_REMEMBERED_BINDINGS; i++) l.bound(`c${i}`, 'm1', i);
    expect(l.bindingCount).toBe(MAX_REMEMBERED_BINDINGS);
    expect(l.counters.bindingsEvicted).toBe(0);
    // Binding c0 again makes it the most recently bound: c1 is now the oldest.
    l.bound('c0', 'm1', MAX_REMEMBERED_BINDINGS);
    l.bound('new', 'm1', MAX_REMEMBERED_BINDINGS + 1);
    expect(l.bindingCount).toBe(MAX_REMEMBERED_BINDINGS);
    expect(l.counters.bindingsEvicted).toBe(1);
    expect(l.bindingOf('c1')).toBeUndefined();
    expect(l.bindingOf('c0')?.sinceMs).toBe(MAX_REMEMBERED_BINDINGS);
    // The forgotten client's next bind, to another member, counts as a first bind.
    expect(l.bound('c1', 'm2', MAX_REMEMBERED_BINDINGS + 2).rebind).toBe(false);
    expect(l.counters.bindingsEvicted).toBe(2);
    expect(l.bindingOf('c2')).toBeUndefined();
  });

  it('over many evictions, with re-binds and plans between them, always forgets the least recently bound client', () => {
    const l = ledger();
    // The expected table: client -> when last bound, in the order a least-recently-bound list keeps.
    const model = new Map<string, number>();
    const touch = (id: string, t: number) => {
      model.delete(id);
      if (model.size >= MAX_REMEMBERED_BINDINGS) model.delete(model.keys().next().value!);
      model.set(id, t);
    };
    let t = 0;
    for (let i = 0; i < MAX_REMEMBERED_BINDINGS; i++) (l.bound(`c${i}`, 'm1', t), touch(`c${i}`, t++));
    let seed = 7;
    const next = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2147483648), seed % n);
    for (let step = 0; step < 30_000; step++) {
      const kind = next(4);
      // A new client (evicts), a re-bind or a plan of a remembered one (moves it to the end), or of a forgotten one.
      const id = kind === 0 ? `n${step}` : `c${next(MAX_REMEMBERED_BINDINGS)}`;
      if (kind === 3) l.planned(id, [{ memberId: 'm2', share: 1 }], t);
      else l.bound(id, 'm1', t);
      touch(id, t++);
    }
    expect(l.bindingCount).toBe(model.size);
    const actual = [...l.entries()].map(([id, b]) => [id, b.sinceMs]);
    expect(actual).toEqual([...model.entries()]);
  });
});

describe('BindingLedger: recent binds (racing first calls)', () => {
  it('gives the binding back for one report interval, not at its end', () => {
    const l = ledger();
    l.bound('c1', 'm1', 1000);
    expect(l.recentBinding('c1', 1000)?.members).toEqual([{ memberId: 'm1', share: 1 }]);
    expect(l.recentBinding('c1', 1999)?.members[0]?.memberId).toBe('m1');
    expect(l.recentBinding('c1', 2000)).toBeUndefined();
    expect(l.recentBinding('other', 1000)).toBeUndefined();
  });

  it("a plan's binding ends the recent entry: a racing call no longer gets where the bind had sent the client", () => {
    const l = ledger();
    l.bound('c1', 'm1', 1000);
    expect(l.recentCount).toBe(1);
    l.planned('c1', [{ memberId: 'm2', share: 1 }], 1100);
    expect(l.recentBinding('c1', 1200)).toBeUndefined();
    expect(l.recentCount).toBe(0);
    expect(l.bindingOf('c1')).toEqual({ members: [{ memberId: 'm2', share: 1 }], sinceMs: 1100, via: 'plan' });
    // A bind after the plan is recent again.
    l.bound('c1', 'm3', 1300);
    expect(l.recentBinding('c1', 1400)?.members[0]?.memberId).toBe('m3');
  });

  it('reads the report interval at each use', () => {
    let interval = 1000;
    const l = new BindingLedger(() => interval);
    l.bound('c1', 'm1', 0);
    expect(l.recentBinding('c1', 1500)).toBeUndefined();
    interval = 2000;
    expect(l.recentBinding('c1', 1500)?.members[0]?.memberId).toBe('m1');
  });

  it(`when ${MAX_RECENT_BINDS} are remembered, a bind drops those older than an interval`, () => {
    const l = ledger();
    for (let i = 0; i < MAX_RECENT_BINDS / 2; i++) l.bound(`old${i}`, 'm1', 0);
    for (let i = 0; i < MAX_RECENT_BINDS / 2; i++) l.bound(`fresh${i}`, 'm1', 600);
    expect(l.recentCount).toBe(MAX_RECENT_BINDS);
    l.bound('next', 'm1', 1000);
    expect(l.recentCount).toBe(MAX_RECENT_BINDS / 2 + 1);
    expect(l.counters.recentBindsEvicted).toBe(0);
    expect(l.recentBinding('fresh0', 1000)?.members[0]?.memberId).toBe('m1');
    // The dropped ones are still remembered as bindings (for re-bind counting).
    expect(l.bindingOf('old0')?.sinceMs).toBe(0);
  });

  it(`when ${MAX_RECENT_BINDS} are remembered, a bind keeps a client re-bound within the interval and drops the old ones around it`, () => {
    const l = ledger();
    for (let i = 0; i < MAX_RECENT_BINDS / 2; i++) l.bound(`old${i}`, 'm1', 0);
    // Bound first, re-bound since: fresh, though it was the first entry of the table.
    l.bound('old0', 'm2', 600);
    for (let i = 0; i < MAX_RECENT_BINDS / 2; i++) l.bound(`fresh${i}`, 'm1', 600);
    expect(l.recentCount).toBe(MAX_RECENT_BINDS);
    l.bound('next', 'm1', 1000);
    // old0, the fresh ones and next.
    expect(l.recentCount).toBe(MAX_RECENT_BINDS / 2 + 2);
    expect(l.counters.recentBindsEvicted).toBe(0);
    expect(l.recentBinding('old0', 1000)?.members[0]?.memberId).toBe('m2');
    expect(l.recentBinding('old1', 1000)).toBeUndefined();
  });

  it(`when ${MAX_RECENT_BINDS} are remembered after the clock stepped back, a bind forgets the oldest entry (counted) rather than clearing`, () => {
    const l = ledger();
    for (let i = 0; i < MAX_RECENT_BINDS / 2; i++) l.bound(`late${i}`, 'm1', 5000);
    // The clock stepped back by 4.5 s: these binds are older than the ones before them in the table.
    for (let i = 0; i < MAX_RECENT_BINDS / 2; i++) l.bound(`early${i}`, 'm1', 500);
    l.bound('next', 'm1', 1500);
    expect(l.counters.recentBindsEvicted).toBe(1);
    expect(l.recentCount).toBe(MAX_RECENT_BINDS);
    expect(l.recentBinding('late0', 1500)).toBeUndefined();
    expect(l.recentBinding('late1', 1500)?.members[0]?.memberId).toBe('m1');
    // Still in the table, but older than an interval: it answers nothing.
    expect(l.recentBinding('early0', 1500)).toBeUndefined();
  });

  it(`when ${MAX_RECENT_BINDS} fresh binds are remembered, a flood, the next bind forgets only the oldest (counted), not all of them`, () => {
    const l = ledger();
    for (let i = 0; i < MAX_RECENT_BINDS; i++) l.bound(`c${i}`, 'm1', 500);
    expect(l.recentCount).toBe(MAX_RECENT_BINDS);
    l.bound('one-more', 'm2', 700);
    expect(l.recentCount).toBe(MAX_RECENT_BINDS);
    expect(l.counters.recentBindsEvicted).toBe(1);
    expect(l.recentBinding('c0', 700)).toBeUndefined();
    // The others keep their racing protection.
    expect(l.recentBinding('c1', 700)?.members[0]?.memberId).toBe('m1');
    expect(l.recentBinding(`c${MAX_RECENT_BINDS - 1}`, 700)?.members[0]?.memberId).toBe('m1');
    expect(l.recentBinding('one-more', 700)?.members[0]?.memberId).toBe('m2');
    expect(l.bindingCount).toBe(MAX_RECENT_BINDS + 1);
  });

  it('at 20,000 binds/s (twice the bound per report interval) a client bound 100 ms ago always still gets its member', () => {
    const l = ledger();
    const perMs = 20;
    let lost = 0;
    for (let i = 0; i < 3 * 20_000; i++) {
      const now = Math.floor(i / perMs);
      l.bound(`c${i}`, `m${i % 7}`, now);
      const j = i - 100 * perMs;
      if (j >= 0 && l.recentBinding(`c${j}`, now)?.members[0]?.memberId !== `m${j % 7}`) lost++;
    }
    expect(lost).toBe(0);
    expect(l.recentCount).toBeLessThanOrEqual(MAX_RECENT_BINDS);
    // Binds fresher than an interval were forgotten early (half of them: the bound holds half an interval at this rate).
    expect(l.counters.recentBindsEvicted).toBeGreaterThan(20_000);
  });
});

describe('BindingLedger: holds', () => {
  it('holds a client until its time, and expires it then', () => {
    const l = ledger();
    l.hold('c1', 1500);
    l.hold('c2', 3000);
    expect(l.isHeld('c1', 1499)).toBe(true);
    expect(l.isHeld('c1', 1500)).toBe(false);
    expect(l.isHeld('c3', 0)).toBe(false);
    l.expireHolds(1499);
    expect(l.holdCount).toBe(2);
    l.expireHolds(1500);
    expect(l.holdCount).toBe(1);
    expect(l.isHeld('c2', 1500)).toBe(true);
    l.hold('c2', 4000); // a later move holds it anew
    l.expireHolds(3000);
    expect(l.isHeld('c2', 3000)).toBe(true);
  });
});

describe('BindingLedger: transits', () => {
  it('counts the planned load at the target until the client left the source and showed at the target in two reports', () => {
    const l = ledger();
    l.startTransit('c1', transit('a', 'b', 40, 10_000));
    expect(l.settleTransits('b', new Set(['c1']), 1000)).toBe(40);
    expect([reportsAtTarget(l.transitOf('c1')), leftSource(l.transitOf('c1'))]).toEqual([1, false]);
    // Still listed at the source: not left yet.
    expect(l.settleTransits('a', new Set(['c1', 'x']), 1000)).toBe(0);
    expect(leftSource(l.transitOf('c1'))).toBe(false);
    expect(l.settleTransits('a', new Set(['x']), 2000)).toBe(0);
    expect(leftSource(l.transitOf('c1'))).toBe(true);
    // A report of a member not in the transit changes nothing.
    expect(l.settleTransits('z', new Set(), 2000)).toBe(0);
    expect([reportsAtTarget(l.transitOf('c1')), leftSource(l.transitOf('c1'))]).toEqual([1, true]);
    // The second report at the target ends it, and still counts its planned load.
    expect(l.settleTransits('b', new Set(['c1']), 2000)).toBe(40);
    expect(l.transitOf('c1')).toBeUndefined();
    expect(l.transitCount).toBe(0);
  });

  it('a target report not listing the client counts the planned load but not as a report at the target', () => {
    const l = ledger();
    l.startTransit('c1', transit('a', 'b', 25, 10_000));
    l.startTransit('c2', transit('a', 'b', 15, 10_000));
    expect(l.settleTransits('b', new Set(['c2']), 100)).toBe(40);
    expect(reportsAtTarget(l.transitOf('c1'))).toBe(0);
    expect(reportsAtTarget(l.transitOf('c2'))).toBe(1);
  });

  it('gives up at its time, on any member report', () => {
    const l = ledger();
    l.startTransit('c1', transit('a', 'b', 40, 5000));
    expect(l.settleTransits('z', new Set(), 4999)).toBe(0);
    expect(l.transitCount).toBe(1);
    expect(l.settleTransits('z', new Set(), 5000)).toBe(0);
    expect(l.transitOf('c1')).toBeUndefined();
  });
});

describe('BindingLedger: pending binds and calls', () => {
  it('counts binds and proxied calls per member until its report, in the live record the member reads', () => {
    const l = ledger();
    const record = l.trackMember('m1');
    l.bound('c1', 'm1', 0);
    l.bound('c2', 'm1', 0);
    l.calledThrough('m1');
    l.bound('c3', 'm2', 0);
    expect(record).toEqual({ binds: 2, calls: 1 });
    expect(l.pendingFor('m2')).toEqual({ binds: 1, calls: 0 });
    l.reported('m1');
    expect(record).toEqual({ binds: 0, calls: 0 });
    expect(l.pendingFor('m2')).toEqual({ binds: 1, calls: 0 });
  });
});

describe('BindingLedger: pending-bind credit per caller', () => {
  it('gives a caller at most maxPendingBindsPerCaller credits per window, and new ones when the window ends', () => {
    const l = ledger();
    l.maxPendingBindsPerCaller = 2;
    expect(l.bound('c1', 'm1', 0, 'x').credited).toBe(true);
    expect(l.bound('c2', 'm1', 0, 'x').credited).toBe(true);
    expect(l.bound('c3', 'm1', 999, 'x')).toEqual({ credited: false, rebind: false });
    expect(l.bound('c4', 'm1', 999, 'y').credited).toBe(true); // another caller has its own
    expect(l.bound('c5', 'm1', 999).credited).toBe(true); // no caller: always
    expect(l.pendingFor('m1').binds).toBe(4);
    expect(l.counters.creditRefused).toBe(1);
    // An uncredited bind is still a binding.
    expect(l.bindingOf('c3')?.members[0]?.memberId).toBe('m1');
    expect(l.bound('c6', 'm1', 1000, 'x').credited).toBe(true);
    expect(l.creditCallerCount).toBe(1);
  });

  it('a window starts at the first bind after the last one ended', () => {
    const l = ledger();
    l.maxPendingBindsPerCaller = 1;
    expect(l.bound('c1', 'm1', 0, 'x').credited).toBe(true);
    expect(l.bound('c2', 'm1', 1200, 'x').credited).toBe(true); // new window from 1200
    expect(l.bound('c3', 'm1', 2100, 'x').credited).toBe(false); // still the window of 1200
    expect(l.bound('c4', 'm1', 2200, 'x').credited).toBe(true);
  });

  it('a maximum of 0 gives no credit to any caller', () => {
    const l = ledger();
    l.maxPendingBindsPerCaller = 0;
    expect(l.bound('c1', 'm1', 0, 'x').credited).toBe(false);
    expect(l.pendingFor('m1').binds).toBe(0);
    expect(l.creditCallerCount).toBe(0);
  });

  it(`tracks ${MAX_CREDIT_CALLERS} callers per window; a new caller beyond them gets none, known ones keep theirs`, () => {
    const l = ledger();
    for (let i = 0; i < MAX_CREDIT_CALLERS; i++) expect(l.bound(null, 'm1', 0, `caller${i}`).credited).toBe(true);
    expect(l.creditCallerCount).toBe(MAX_CREDIT_CALLERS);
    expect(l.bound(null, 'm1', 10, 'one-too-many').credited).toBe(false);
    expect(l.bound(null, 'm1', 10, 'caller0').credited).toBe(true);
    expect(l.counters.creditRefused).toBe(1);
    expect(l.pendingFor('m1').binds).toBe(MAX_CREDIT_CALLERS + 1);
    // The next window starts empty.
    expect(l.bound(null, 'm1', 1000, 'one-too-many').credited).toBe(true);
    expect(l.creditCallerCount).toBe(1);
  });
});

describe('BindingLedger: forgetting a member', () => {
  it('drops its pending counts, the recent binds naming it and its transits, and keeps the bindings for re-bind counting', () => {
    const l = ledger();
    const record = l.trackMember('m1');
    l.bound('c1', 'm1', 0);
    l.bound('c2', 'm2', 0);
    l.startTransit('t1', transit('m1', 'm2', 10, 10_000));
    l.startTransit('t2', transit('m2', 'm1', 10, 10_000));
    l.startTransit('t3', transit('m2', 'm3', 10, 10_000));
    l.forgetMember('m1');
    expect(l.recentBinding('c1', 10)).toBeUndefined();
    expect(l.recentBinding('c2', 10)?.members[0]?.memberId).toBe('m2');
    expect(l.recentCount).toBe(1);
    expect([l.transitOf('t1'), l.transitOf('t2'), l.transitOf('t3')?.legs.get('m3')?.load]).toEqual([undefined, undefined, 10]);
    expect(l.bindingOf('c1')?.members[0]?.memberId).toBe('m1');
    // A new record starts from zero; the forgotten one is no longer updated.
    expect(l.trackMember('m1')).toEqual({ binds: 0, calls: 0 });
    expect(record).toEqual({ binds: 1, calls: 0 });
    // Binding the client elsewhere is a re-bind.
    expect(l.bound('c1', 'm3', 20).rebind).toBe(true);
  });

  it('a report of a forgotten member does not bring its record back', () => {
    const l = ledger();
    l.trackMember('m1');
    l.forgetMember('m1');
    expect(l.memberCount).toBe(0);
    l.reported('m1');
    expect(l.memberCount).toBe(0);
  });
});

describe('Group: binds go through its ledger', () => {
  const PATH = '/p.S/M';
  const sink: AdvisorySink = { sendAdvisory: () => true, close: () => undefined };
  const report = (seq: number): LoadReport__Output => ({
    seq,
    clientCount: 0,
    intervalMs: INTERVAL_MS,
    callsPerS: 0,
    inFlight: 0,
    latencyMs: 1,
    eventLoopUtilization: 0,
    cpuCores: 1,
    custom: 0,
    hasCustom: false,
    topClients: [],
    otherCallsPerS: 0,
    forwards: 0,
    draining: false,
  });
  const setup = () => {
    const group = new Group({ name: 'g', ...builtinGroupDefaults(), strategy: { name: 'round_robin', params: {} }, reportIntervalMs: INTERVAL_MS }, pino({ level: 'silent' }));
    const members = ['a', 'b', 'c'].map((id) => new Member(id, 'g', `127.0.0.1:${id.charCodeAt(0)}`, [{ path: PATH, kind: 'UNARY' } as never], sink, 0));
    for (const m of members) group.addMember(m);
    return { group, members };
  };

  it('a racing bind gets the recent member, is not counted again, and a report clears what is pending', () => {
    const { group, members } = setup();
    const first = group.choose(PATH, 'bind', 'c1', 0, undefined, 'x')!;
    expect(group.choose(PATH, 'bind', 'c1', 999, undefined, 'x')).toBe(first);
    expect(first.pendingBinds).toBe(1);
    expect(group.counters).toMatchObject({ binds: 1, rebinds: 0 });
    expect(group.ledger.bindingOf('c1')?.members).toEqual([{ memberId: first.id, share: 1 }]);
    group.choose(PATH, 'call', null, 0);
    expect(members.reduce((s, m) => s + m.pendingCalls, 0)).toBe(1);
    group.applyReport(first, report(1), 1000);
    expect([first.pendingBinds, first.pendingCalls]).toEqual([0, 0]);
    // After the interval the strategy chooses again: round robin moves on, a re-bind.
    const second = group.choose(PATH, 'bind', 'c1', 1000, new Set([first.address]), 'x')!;
    expect(second).not.toBe(first);
    expect(group.counters).toMatchObject({ binds: 2, rebinds: 1 });
    expect(group.ledger.bindingOf('c1')?.via).toBe('avoid');
  });

  it('over its credit a bind is made but not pending, and lastCreditCapped says so', () => {
    const { group } = setup();
    group.maxPendingBindsPerCaller = 1;
    const a = group.choose(PATH, 'bind', 'c1', 0, undefined, 'x')!;
    expect(group.lastCreditCapped).toBe(false);
    const b = group.choose(PATH, 'bind', 'c2', 0, undefined, 'x')!;
    expect(group.lastCreditCapped).toBe(true);
    expect([a.pendingBinds, b.pendingBinds]).toEqual([1, 0]);
    expect(group.counters.binds).toBe(2);
  });

  it('a member that leaves is forgotten by the ledger: a racing bind goes elsewhere', () => {
    const { group } = setup();
    const first = group.choose(PATH, 'bind', 'c1', 0)!;
    group.removeMember(first.id);
    expect(group.ledger.memberCount).toBe(2);
    const next = group.choose(PATH, 'bind', 'c1', 10)!;
    expect(next.id).not.toBe(first.id);
    expect(group.counters).toMatchObject({ binds: 2, rebinds: 1 });
  });
});

describe('BindingLedger: the bindings-size histogram, kept as bindings change', () => {
  /** The histogram by a walk of every remembered binding (what sizeHistogram computed on each read before). */
  function walked(l: BindingLedger): number[] {
    const counts = [0];
    for (const [, b] of l.entries()) {
      while (counts.length <= b.members.length) counts.push(0);
      counts[b.members.length]!++;
    }
    return counts;
  }
  const set = (...ids: string[]) => ids.map((memberId) => ({ memberId, share: 1 / ids.length }));

  it('equals a walk of the ledger through binds, re-binds, plans of other sizes and evictions', () => {
    const l = ledger();
    expect(l.sizeHistogram()).toEqual([0]);
    l.bound('c1', 'a', 0);
    l.bound('c2', set('a', 'b'), 0);
    l.planned('c1', set('a', 'b', 'c'), 1);
    expect(l.sizeHistogram()).toEqual([0, 0, 1, 1]);
    expect(l.sizeHistogram()).toEqual(walked(l));
    // Back to one member: the largest size goes with it.
    l.bound('c1', 'b', 2);
    expect(l.sizeHistogram()).toEqual([0, 1, 1]);
    expect(l.sizeHistogram()).toEqual(walked(l));
    // Fill to the bound and beyond: the oldest (c2, of 2 members) and then one-member bindings are evicted.
    for (let c = 0; c < MAX_REMEMBERED_BINDINGS; c++) l.bound(`fill-${c}`, 'a', 10 + c);
    expect(l.counters.bindingsEvicted).toBe(2);
    expect(l.sizeHistogram()).toEqual([0, MAX_REMEMBERED_BINDINGS]);
    expect(l.sizeHistogram()).toEqual(walked(l));
    l.planned('fill-5', set('a', 'b'), 10 + MAX_REMEMBERED_BINDINGS);
    l.planned('new-planned', set('a', 'b', 'c', 'd'), 10 + MAX_REMEMBERED_BINDINGS);
    expect(l.sizeHistogram()).toEqual(walked(l));
    expect(l.sizeHistogram().reduce((a, b) => a + b, 0)).toBe(l.bindingCount);
  });
});

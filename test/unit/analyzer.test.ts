/**
 * The analyzer on virtual time (rxjs VirtualTimeScheduler): members, reports
 * and advisories without sockets.
 */
import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { analyzerSetup, report } from '../support/analyzer-harness';

const setup = analyzerSetup;

describe('analyzer', () => {
  it('removes a member after missedReports silent intervals and closes its stream', () => {
    const { scheduler, join, group, registry } = setup({ missedReports: 3 }, 1000);
    const quiet = join('10.0.0.1:1');
    const talker = join('10.0.0.2:1');
    let seq = 0;
    for (let t = 50; t < 1000; t += 100) scheduler.schedule(() => group.applyReport(talker.member, report(++seq, {}), scheduler.now()), t);
    let removedAt = -1;
    registry.listen({ memberRemoved: (_g, m) => m === quiet.member && (removedAt = scheduler.now()) });
    scheduler.flush();
    // Attached at 0, never reported: liveness is checked every interval / 4
    // (25 ms); the first check past 3 x 100 ms of silence is at 325 ms.
    expect(removedAt).toBe(325);
    expect(quiet.sink.closed?.code).toBe(status.UNAVAILABLE);
    expect(quiet.sink.closed?.details).toContain('no load report');
    expect(group.members.has(talker.member.id)).toBe(true);
  });

  it('on-demand minimum_dispersion: one advisory moves two of four clients to the newcomer, then nothing', () => {
    const { scheduler, join, group } = setup({ granularity: 'on-demand', strategy: 'minimum_dispersion', dampening: 0.5, holdMs: 5000 }, 3000);
    const a = join('10.0.0.1:1');
    // Where each client's calls go; advisories move them.
    const location = new Map([
      ['client-0000', a],
      ['client-1111', a],
      ['client-2222', a],
      ['client-3333', a],
    ]);
    const members = [a];
    const seqs = new Map<typeof a, number>([[a, 0]]);
    let b: typeof a | null = null;
    scheduler.schedule(() => {
      b = join('10.0.0.2:1');
      members.push(b);
      seqs.set(b, 0);
    }, 420);
    // Every 100 ms each member reports the clients located on it at 50 calls/s,
    // after applying the advisories it received (clients move at their next call).
    for (let t = 90; t < 3000; t += 100) {
      scheduler.schedule(() => {
        for (const m of members) {
          for (const adv of m.sink.advisories.splice(0)) {
            for (const move of adv.moves!) location.set(move.clientId!, members.find((x) => x.member.address === move.target)!);
          }
        }
        for (const m of members) {
          const mine = Object.fromEntries([...location].filter(([, where]) => where === m).map(([id]) => [id, 50]));
          const seq = seqs.get(m)! + 1;
          seqs.set(m, seq);
          group.applyReport(m.member, report(seq, mine), scheduler.now());
        }
      }, t);
    }
    const advisoriesSent: number[] = [];
    const original = a.sink.sendAdvisory.bind(a.sink);
    a.sink.sendAdvisory = (adv) => {
      advisoriesSent.push(scheduler.now());
      return original(adv);
    };
    scheduler.flush();
    const onA = [...location.values()].filter((x) => x === a).length;
    expect(onA).toBe(2);
    expect(4 - onA).toBe(2);
    // B attached at 420 and first reported at 490; the tick at 500 plans.
    expect(advisoriesSent).toEqual([500]);
    expect(group.counters.movesPlanned).toBe(2);
    expect(b).not.toBeNull();
  });

  it.each([
    ['on-demand round_robin (non-adaptive)', { granularity: 'on-demand', strategy: 'round_robin' }],
    ['per-session minimum_dispersion', { granularity: 'per-session', strategy: 'minimum_dispersion' }],
  ])('%s never advises, however uneven the load', (_name, group) => {
    const { scheduler, join, group: g } = setup(group, 1000);
    const a = join('10.0.0.1:1');
    const b = join('10.0.0.2:1');
    let seq = 0;
    for (let t = 90; t < 1000; t += 100) {
      scheduler.schedule(() => {
        seq++;
        g.applyReport(a.member, report(seq, { 'client-0000': 50, 'client-1111': 50 }), scheduler.now());
        g.applyReport(b.member, report(seq, {}), scheduler.now());
      }, t);
    }
    scheduler.flush();
    expect(g.members.get(a.member.id)!.reports).toBe(10);
    expect(a.sink.advisories).toEqual([]);
  });

  it('a report still counting moved clients at their old member does not trigger a second plan', () => {
    // The advisory lands late in A's interval: A's next report still counts the
    // moved clients' calls in full and B's shows none of them. One of the
    // clients that stay on A runs 10 % slower than the others.
    const { scheduler, join, group } = setup({ granularity: 'on-demand', strategy: 'minimum_dispersion', dampening: 0.5, holdMs: 10_000 }, 4000);
    const a = join('10.0.0.1:1');
    const b = join('10.0.0.2:1');
    const rates: Record<string, number> = { 'client-0000': 45, 'client-1111': 50, 'client-2222': 50, 'client-3333': 50 };
    const location = new Map(Object.keys(rates).map((c) => [c, a]));
    let lagging = new Set<string>();
    let seqA = 0;
    let seqB = 0;
    let advisories = 0;
    for (let t = 90; t < 4000; t += 100) {
      scheduler.schedule(() => {
        const on = (m: typeof a) => {
          const out: Record<string, number> = {};
          for (const [c, where] of location) if (where === m || (lagging.has(c) && m === a)) out[c] = rates[c]!;
          for (const c of lagging) if (m === b) delete out[c];
          return out;
        };
        group.applyReport(a.member, report(++seqA, on(a)), scheduler.now());
        group.applyReport(b.member, report(++seqB, on(b)), scheduler.now());
        lagging = new Set();
        for (const adv of a.sink.advisories.splice(0)) {
          advisories++;
          for (const move of adv.moves!) {
            location.set(move.clientId!, b);
            lagging.add(move.clientId!);
          }
        }
      }, t);
    }
    scheduler.flush();
    expect(advisories).toBe(1);
    expect([...location.values()].filter((m) => m === b)).toHaveLength(2);
    expect(b.sink.advisories).toEqual([]);
  });

  it('a strategy switch acts at the next analysis, within one report interval', () => {
    const { scheduler, join, group } = setup({ granularity: 'on-demand', strategy: 'round_robin' }, 3000);
    const a = join('10.0.0.1:1');
    const b = join('10.0.0.2:1');
    let seq = 0;
    for (let t = 50; t < 3000; t += 100) {
      scheduler.schedule(() => {
        seq++;
        group.applyReport(a.member, report(seq, { 'client-0000': 50, 'client-1111': 50 }), scheduler.now());
        group.applyReport(b.member, report(seq, {}), scheduler.now());
      }, t);
    }
    let adviceAt = -1;
    const original = a.sink.sendAdvisory.bind(a.sink);
    a.sink.sendAdvisory = (adv) => {
      if (adviceAt < 0) adviceAt = scheduler.now();
      return original(adv);
    };
    scheduler.schedule(() => group.setStrategy('minimum_dispersion', { tolerance: 0.1, minGain: 0.02, maxMoves: 32 }), 1234);
    scheduler.flush();
    expect(adviceAt).toBeGreaterThan(1234);
    expect(adviceAt - 1234).toBeLessThanOrEqual(100);
  });

  it('a switch to per-request recalls every member at once; a switch back ends the recall', () => {
    const { join, group, analyzer } = setup({ granularity: 'on-demand' }, 100);
    const a = join('10.0.0.1:1');
    group.setGranularity('per-request');
    analyzer.sendRecall(group, true);
    expect(a.sink.advisories.at(-1)).toMatchObject({ recallAll: true, moves: [] });
    group.setGranularity('on-demand');
    analyzer.sendRecall(group, false);
    expect(a.sink.advisories.at(-1)).toMatchObject({ recallAll: false });
  });

  it('makes no plan while members average fewer calls per interval than planMinCalls', () => {
    const run = (planMinCalls: number) => {
      const { scheduler, join, group } = setup({ granularity: 'on-demand', strategy: 'minimum_dispersion', planMinCalls }, 1000);
      const a = join('10.0.0.1:1');
      const b = join('10.0.0.2:1');
      let seq = 0;
      for (let t = 50; t < 1000; t += 100) {
        scheduler.schedule(() => {
          seq++;
          // 4 clients at 20 calls/s on A over 100 ms intervals: 8 calls per interval on A, 0 on B: 4 per member.
          group.applyReport(a.member, report(seq, { 'client-0000': 20, 'client-1111': 20, 'client-2222': 20, 'client-3333': 20 }), scheduler.now());
          group.applyReport(b.member, report(seq, {}), scheduler.now());
        }, t);
      }
      scheduler.flush();
      return a.sink.advisories.length;
    };
    expect(run(10)).toBe(0);
    expect(run(4)).toBe(1);
  });
});


describe('projected load of a new binding', () => {
  it('divides the group load by the clients replicas counted, not by the few their reports list', () => {
    const { join, group } = setup({ topClients: 32 }, 1000);
    const a = join('10.0.0.1:1');
    // 1000 clients at 1 call/s each; the report lists the 32 busiest.
    const listed: Record<string, number> = {};
    for (let i = 0; i < 32; i++) listed[`client-${String(i).padStart(4, '0')}`] = 1;
    group.applyReport(a.member, { ...report(1, listed), callsPerS: 1000, clientCount: 1000 }, 0);
    const perClient = (group as unknown as { expectedClientLoad(): number }).expectedClientLoad();
    expect(perClient).toBeCloseTo(1, 6);
  });
});

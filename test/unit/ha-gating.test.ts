/**
 * Leadership gating of the analyzer (HA): a balancer that does not lead a
 * group makes no plan and sends that group NO advisory of any kind (moves,
 * recalls, offers); liveness checks go on; on gaining leadership it restates
 * the group's advisory state to every member at its next analysis.
 * Virtual time, no sockets, no etcd.
 */
import { describe, expect, it } from 'vitest';
import { analyzerSetup, report, type FakeSink } from '../support/analyzer-harness';

/** Group "g", minimum_dispersion, nothing held back (hold, settle); the analyzer is started by the test once its hook is set. */
function setup(granularity: string, horizonMs: number) {
  return analyzerSetup({ granularity, strategy: 'minimum_dispersion', holdMs: 0, settleReports: 0 }, horizonMs, false);
}

describe('analyzer leadership gating (mayAdvise)', () => {
  it('a non-leader makes no plan and sends nothing; leadership gained: it restates at once, then plans the imbalance', () => {
    const { scheduler, analyzer, join, group } = setup('on-demand', 2000);
    let leading = false;
    analyzer.mayAdvise = (name) => name === 'g' && leading;
    analyzer.start();
    const a = join('10.0.0.1:1');
    const b = join('10.0.0.2:1');
    let seq = 0;
    // A carries four clients, B none: minimum_dispersion moves two at its first analysis when allowed.
    for (let t = 50; t < 2000; t += 100) {
      scheduler.schedule(() => {
        seq++;
        group.applyReport(a.member, report(seq, { c0: 50, c1: 50, c2: 50, c3: 50 }), scheduler.now());
        group.applyReport(b.member, report(seq, {}), scheduler.now());
      }, t);
    }
    scheduler.schedule(() => {
      // A recall (what a granularity switch sends) from a non-leader is not sent either.
      analyzer.sendRecall(group, false);
      analyzer.sendRecallTo(group, a.member, true);
    }, 555);
    scheduler.schedule(() => (leading = true), 1010);
    scheduler.flush();
    const beforeLead = [...a.sink.sent, ...b.sink.sent].filter((x) => x.atMs < 1010);
    expect(beforeLead).toEqual([]);
    expect(group.lastPlan).not.toBeNull();
    expect(group.lastPlan!.atMs).toBeGreaterThan(1010);
    // Liveness went on: both members reported all along and are still there.
    expect(group.members.size).toBe(2);
    // At the first analysis as leader (1100) every member got the restatement (no moves), and A the moves.
    const first = (s: FakeSink) => s.sent[0]!;
    expect(first(a.sink).atMs).toBe(1100);
    expect(first(b.sink)).toMatchObject({ atMs: 1100, advisory: { moves: [], recallAll: false } });
    const moved = a.sink.sent.find((x) => (x.advisory.moves ?? []).length > 0);
    expect(moved?.atMs).toBe(1100);
    expect(moved!.advisory.moves).toHaveLength(2);
  });

  it('per-request group: a non-leader sends no offers; the new leader offers every member at its next analysis', () => {
    const { scheduler, analyzer, join, group } = setup('per-request', 1000);
    let leading = false;
    analyzer.mayAdvise = () => leading;
    analyzer.start();
    const a = join('10.0.0.1:1');
    const b = join('10.0.0.2:1');
    let seq = 0;
    for (let t = 50; t < 1000; t += 100) {
      scheduler.schedule(() => {
        seq++;
        group.applyReport(a.member, report(seq, {}), scheduler.now());
        group.applyReport(b.member, report(seq, {}), scheduler.now());
      }, t);
    }
    scheduler.schedule(() => (leading = true), 610);
    scheduler.flush();
    for (const s of [a.sink, b.sink]) {
      expect(s.sent.filter((x) => x.atMs < 610)).toEqual([]);
      expect(s.sent[0]).toMatchObject({ atMs: 700, advisory: { recallAll: true } });
      expect(s.sent[0]!.advisory.offerBinding).not.toBe('');
    }
  });

  it('without mayAdvise (no HA) the analyzer advises as before', () => {
    const { scheduler, analyzer, join, group } = setup('on-demand', 500);
    analyzer.start();
    const a = join('10.0.0.1:1');
    const b = join('10.0.0.2:1');
    for (let t = 50, seq = 1; t < 500; t += 100, seq++) {
      const s = seq;
      scheduler.schedule(() => {
        group.applyReport(a.member, report(s, { c0: 50, c1: 50, c2: 50, c3: 50 }), scheduler.now());
        group.applyReport(b.member, report(s, {}), scheduler.now());
      }, t);
    }
    scheduler.flush();
    const moved = a.sink.sent.find((x) => (x.advisory.moves ?? []).length > 0);
    expect(moved!.advisory.moves).toHaveLength(2);
    expect(moved!.atMs).toBeLessThan(500);
    expect(b.sink.sent).toEqual([]);
  });
});

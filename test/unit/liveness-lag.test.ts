/**
 * Liveness against the balancer's own lag, on a virtual event loop that can
 * be blocked (test/support/loop-scheduler.ts): after a block the liveness
 * timer fires late, before the loop reads the reports that came meanwhile;
 * the time it was late must not count against the members, while a member
 * that sent nothing is removed at the first check on time after the block,
 * and after missedReports intervals while the balancer keeps time.
 */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { Analyzer } from '../../src/balancer/analyzer';
import { parseBalancerConfig } from '../../src/balancer/config';
import { Member } from '../../src/balancer/member';
import { Registry } from '../../src/balancer/registry';
import { FakeSink, report } from '../support/analyzer-harness';
import { LoopScheduler } from '../support/loop-scheduler';

const log = pino({ level: 'silent' });
/** The group's report interval (ms) and missed reports: removed after 300 ms of silence, checked every 25 ms. */
const INTERVAL_MS = 100;
const MISSED = 3;

function setup(logger = log) {
  const parsed = parseBalancerConfig({ groups: [{ name: 'g', reportIntervalMs: INTERVAL_MS, missedReports: MISSED, planMinCalls: 0 }] });
  if (!parsed.ok) throw new Error(parsed.errors.join());
  const scheduler = new LoopScheduler();
  const registry = new Registry(parsed.value, log, () => 0.5);
  const analyzer = new Analyzer(registry, scheduler, logger);
  analyzer.start();
  const group = registry.groups.get('g')!;
  const seqs = new Map<Member, number>();
  const join = (address: string) => {
    const sink = new FakeSink(() => scheduler.now());
    const member = registry.attach({ protocolVersion: 1, group: 'g', address, methods: [{ path: '/p.S/M', kind: 'UNARY' }], replicaId: '', resumeSecret: '' }, sink, scheduler.now());
    if (!(member instanceof Member)) throw new Error(member.message);
    seqs.set(member, 0);
    return member;
  };
  /** The balancer reads one report of `member` now (its poll phase). */
  const read = (member: Member) => {
    const seq = seqs.get(member)! + 1;
    seqs.set(member, seq);
    group.applyReport(member, report(seq, {}), scheduler.now());
  };
  const removedAt = new Map<Member, number>();
  registry.listen({ memberRemoved: (_g, m) => removedAt.set(m, scheduler.now()) });
  /**
   * Runs the loop freely from now to `untilMs` in 5 ms steps, reading each
   * of `reporters`' reports when it arrives (every interval, at 50 ms past
   * each 100 ms).
   */
  const runReading = (untilMs: number, reporters: Member[]) => {
    for (let t = scheduler.now() + 5; t <= untilMs; t += 5) {
      scheduler.runUntil(t);
      if (t % INTERVAL_MS === 50) for (const m of reporters) if (group.members.get(m.id) === m) read(m);
    }
  };
  return { scheduler, group, join, read, removedAt, runReading };
}

describe('liveness and the balancer lag', () => {
  it('a check that fires 3.5 intervals late, with reports waiting unread, removes nobody; the waiting reports keep them', () => {
    const { scheduler, group, join, read, removedAt, runReading } = setup();
    const a = join('10.0.0.1:1');
    const b = join('10.0.0.2:1');
    runReading(1000, [a, b]);
    // Last reports read at 950. The loop is blocked for 350 ms (from 1000 to 1350): the reports
    // that came at 1050, 1150 and 1250 sit in the socket buffers. After the block Node runs the
    // due timers first (the liveness check, 400 ms after the last report read: beyond 300 ms)...
    scheduler.block(350);
    scheduler.runUntil(scheduler.now());
    expect(removedAt.size).toBe(0);
    // ...then reads the sockets.
    read(a);
    read(b);
    runReading(3000, [a, b]);
    expect(removedAt.size).toBe(0);
    expect([...group.members.values()]).toEqual([a, b]);
  });

  it('a member that is really silent while the balancer keeps time is removed after missedReports intervals', () => {
    const { join, removedAt, runReading } = setup();
    const talker = join('10.0.0.1:1');
    const quiet = join('10.0.0.2:1');
    // quiet's last report is read at 250: removed at the first check (every 25 ms) with more than 300 ms of silence.
    runReading(250, [talker, quiet]);
    runReading(2000, [talker]);
    expect(removedAt.get(quiet)).toBe(575);
    expect(removedAt.has(talker)).toBe(false);
  });

  it('a member that sent nothing during a block is removed at the first check on time after it', () => {
    const { scheduler, join, read, removedAt, runReading } = setup();
    const talker = join('10.0.0.1:1');
    const quiet = join('10.0.0.2:1');
    runReading(1000, [talker, quiet]);
    // quiet's last report was read at 950; the loop is blocked from 1000 to 1350 (the check due
    // at 1025 fires at 1350, 325 ms late): not removed at that check (the old rule removed it there:
    // its report might be waiting)...
    scheduler.block(350);
    scheduler.runUntil(scheduler.now());
    expect(removedAt.has(quiet)).toBe(false);
    // ...the balancer then reads what came during the block (talker's report; nothing of quiet's),
    // and the next check, on time at 1375, finds quiet silent for 425 ms: removed.
    read(talker);
    runReading(3000, [talker]);
    expect(removedAt.get(quiet)).toBe(1375);
    expect(removedAt.has(talker)).toBe(false);
  });

  it('a balancer that is late all the time excuses each check its own lateness, not the sum: a silent member goes within one late check', () => {
    const { scheduler, join, read, removedAt, runReading } = setup();
    const talker = join('10.0.0.1:1');
    const quiet = join('10.0.0.2:1');
    runReading(500, [talker, quiet]);
    // quiet's last report was read at 450. From 500 the loop is busy: each turn takes 50 ms, so
    // every check (due every 25 ms) fires 25 ms late, and talker's reports are read every turn.
    while (scheduler.now() < 2000) {
      scheduler.block(50);
      scheduler.runUntil(scheduler.now());
      read(talker);
    }
    // Removed at the first check with more than 300 ms of silence beyond its 25 ms excuse:
    // 450 + 300 + 25 = 775, checks at every 50 ms turn: 800. (Counting the excuses' sum would
    // keep it to about 1050.)
    expect(removedAt.get(quiet)).toBe(800);
    expect(removedAt.has(talker)).toBe(false);
  });

  it('a check a whole interval late is worth a warn line, at most one a minute', () => {
    const lines: string[] = [];
    const { scheduler, join, read, runReading } = setup(pino({ level: 'warn' }, { write: (line: string) => lines.push(line) }));
    const a = join('10.0.0.1:1');
    runReading(1000, [a]);
    // 90 ms late: below an interval, no line.
    scheduler.block(115);
    scheduler.runUntil(scheduler.now());
    read(a);
    runReading(2000, [a]);
    expect(lines).toEqual([]);
    // 135 ms late (the last check before the block was at 1990): a line.
    scheduler.block(150);
    scheduler.runUntil(scheduler.now());
    read(a);
    runReading(3000, [a]);
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ group: 'g', lateMs: 135 });
    // Again within the minute: none; after it, one that counts the ones left out.
    scheduler.block(150);
    scheduler.runUntil(scheduler.now());
    read(a);
    runReading(62_000, [a]);
    expect(lines).toHaveLength(1);
    scheduler.block(150);
    scheduler.runUntil(scheduler.now());
    expect(lines).toHaveLength(2);
    expect(JSON.parse(lines[1]!)).toMatchObject({ lateMs: 125, unwarned: 1 });
  });
});

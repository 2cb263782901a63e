/**
 * The analyzer (TAO's Load Analyzer): once per report interval of each
 * group it removes members that stopped reporting, asks the group's strategy
 * for a shedding plan and sends the resulting advisories to the members
 * that must move clients. Its loop is an rxjs pipeline on an injected
 * scheduler, so tests and the simulator run it on virtual time.
 */
import { timer, type SchedulerLike, type Subscription } from 'rxjs';
import type { Logger } from '../common/logger';
import type { Group } from './group';
import type { Member } from './member';
import type { Registry } from './registry';
import type { Move } from './strategies/types';

export interface AnalyzerEvents {
  /** Called after each analysis with the moves sent (possibly none). */
  analyzed?(group: Group, moves: readonly Move[], nowMs: number): void;
}

export class Analyzer {
  private readonly loops = new Map<string, Subscription>();
  private readonly advisorySeq = new WeakMap<Member, number>();
  private running = false;

  constructor(
    private readonly registry: Registry,
    private readonly scheduler: SchedulerLike,
    private readonly log: Logger,
    private readonly events: AnalyzerEvents = {},
  ) {
    registry.listen({ groupAdded: (group) => this.running && this.startLoop(group) });
  }

  start(): void {
    this.running = true;
    for (const group of this.registry.groups.values()) this.startLoop(group);
  }

  stop(): void {
    this.running = false;
    for (const sub of this.loops.values()) sub.unsubscribe();
    this.loops.clear();
  }

  private startLoop(group: Group): void {
    if (this.loops.has(group.name)) return;
    const interval = group.config.reportIntervalMs;
    this.loops.set(
      group.name,
      timer(interval, interval, this.scheduler).subscribe(() => this.analyze(group, this.scheduler.now())),
    );
  }

  /** One analysis of one group at time `nowMs`. */
  analyze(group: Group, nowMs: number): Move[] {
    const deadline = group.config.missedReports * group.config.reportIntervalMs;
    for (const member of [...group.members.values()]) {
      const silentMs = nowMs - member.lastReportAtMs;
      if (silentMs > deadline) {
        const reason = `no load report for ${silentMs} ms (${group.config.missedReports} report intervals of ${group.config.reportIntervalMs} ms)`;
        this.registry.detach(member, reason);
        member.sink.close(14 /* UNAVAILABLE */, `rebind: ${reason}`);
      }
    }
    const moves = group.plan(nowMs);
    if (moves.length > 0) this.sendMoves(group, moves, nowMs);
    this.events.analyzed?.(group, moves, nowMs);
    return moves;
  }

  private sendMoves(group: Group, moves: readonly Move[], nowMs: number): void {
    const bySource = new Map<string, Move[]>();
    for (const move of moves) {
      const list = bySource.get(move.from) ?? [];
      list.push(move);
      bySource.set(move.from, list);
    }
    for (const [memberId, list] of bySource) {
      const member = group.members.get(memberId);
      if (member === undefined) continue;
      const seq = (this.advisorySeq.get(member) ?? 0) + 1;
      this.advisorySeq.set(member, seq);
      const advisory = {
        seq,
        moves: list.map((m) => ({ clientId: m.clientId, target: group.members.get(m.to)?.address ?? '' })),
        recallAll: false,
        expireMs: group.config.advisoryExpireMs,
      };
      if (member.sink.sendAdvisory(advisory)) {
        group.counters.advisories++;
        this.log.info(
          { group: group.name, member: member.id, moves: advisory.moves, at: nowMs },
          `advisory ${seq} to ${member.id}: move ${list.length} client(s)`,
        );
      } else {
        this.registry.detach(member, 'advisory could not be delivered: control stream gone');
      }
    }
  }

  /** Sends a recall (or its end) to every member of a group. */
  sendRecall(group: Group, recallAll: boolean): void {
    for (const member of group.members.values()) this.sendRecallTo(group, member, recallAll);
  }

  sendRecallTo(group: Group, member: Member, recallAll: boolean): void {
    const seq = (this.advisorySeq.get(member) ?? 0) + 1;
    this.advisorySeq.set(member, seq);
    if (!member.sink.sendAdvisory({ seq, moves: [], recallAll, expireMs: group.config.advisoryExpireMs })) {
      this.registry.detach(member, 'advisory could not be delivered: control stream gone');
    }
  }
}

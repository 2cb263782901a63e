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
import { VOUCH_MARGIN_MS, type Voucher } from './vouch';

/** Report intervals of silence after which a member is suspect. */
export const SUSPECT_INTERVALS = 1.5;

export interface AnalyzerEvents {
  /** Called after each analysis with the moves sent (possibly none). */
  analyzed?(group: Group, moves: readonly Move[], nowMs: number): void;
  /** An advisory was delivered to `member`: move these clients to these addresses. */
  advised?(group: Group, member: Member, moves: readonly { clientId: string; target: string }[], nowMs: number): void;
  /** A recall (recallAll true) or its end was sent to a group's members. */
  recalled?(group: Group, recallAll: boolean): void;
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
    /** Signs each move's target so that clients can check it (null: no vouchers). */
    private readonly voucher: Voucher | null = null,
  ) {
    registry.listen({
      groupAdded: (group) => this.running && this.startLoop(group),
      groupRemoved: (group) => {
        this.loops.get(group.name)?.unsubscribe();
        this.loops.delete(group.name);
      },
    });
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
    const analysis = timer(interval, interval, this.scheduler).subscribe(() => this.analyze(group, this.scheduler.now()));
    // Liveness is checked four times per interval, so that a silent member is
    // noticed within 2 report intervals whatever the phase of its reports.
    const quarter = Math.max(1, Math.round(interval / 4));
    analysis.add(timer(quarter, quarter, this.scheduler).subscribe(() => this.checkLiveness(group, this.scheduler.now())));
    this.loops.set(group.name, analysis);
  }

  /**
   * A member silent for SUSPECT_INTERVALS report intervals is suspect (no new
   * client); after `missedReports` intervals it is removed and its stream
   * closed. A crashed replica's stream loss removes it at once instead.
   */
  checkLiveness(group: Group, nowMs: number): void {
    if (this.registry.sweepIdle(group, nowMs)) return;
    const interval = group.config.reportIntervalMs;
    const deadline = group.config.missedReports * interval;
    for (const member of [...group.members.values()]) {
      const silentMs = nowMs - member.lastReportAtMs;
      if (silentMs > deadline) {
        const reason = `no load report for ${silentMs} ms (${group.config.missedReports} report intervals of ${interval} ms)`;
        this.registry.detach(member, reason);
        member.sink.close(14 /* UNAVAILABLE */, `rebind: ${reason}`);
      } else if (silentMs > SUSPECT_INTERVALS * interval && member.state !== 'SUSPECT') {
        group.suspect(member);
      }
    }
  }

  /** One analysis of one group at time `nowMs`. */
  analyze(group: Group, nowMs: number): Move[] {
    this.checkLiveness(group, nowMs);
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
        moves: list.map((m) => {
          const target = group.members.get(m.to)?.address ?? '';
          // Wall-clock expiry (not the scheduler's time): clients check vouchers against their own clocks.
          const vouch = target !== '' && this.voucher !== null ? this.voucher.vouch(group.name, target, group.config.advisoryExpireMs + VOUCH_MARGIN_MS) : '';
          return { clientId: m.clientId, target, vouch };
        }),
        recallAll: false,
        expireMs: group.config.advisoryExpireMs,
      };
      if (member.sink.sendAdvisory(advisory)) {
        group.counters.advisories++;
        group.counters.movesSent += advisory.moves.length;
        this.events.advised?.(group, member, advisory.moves, nowMs);
        this.log.debug(
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
    this.events.recalled?.(group, recallAll);
  }

  sendRecallTo(group: Group, member: Member, recallAll: boolean): void {
    const seq = (this.advisorySeq.get(member) ?? 0) + 1;
    this.advisorySeq.set(member, seq);
    if (!member.sink.sendAdvisory({ seq, moves: [], recallAll, expireMs: group.config.advisoryExpireMs })) {
      this.registry.detach(member, 'advisory could not be delivered: control stream gone');
    }
  }
}

/**
 * The analyzer (TAO's Load Analyzer): once per report interval of each
 * group it removes members that stopped reporting, asks the group's strategy
 * for a shedding plan and sends the resulting advisories to the members
 * that must move clients. Its loop is an rxjs pipeline on an injected
 * scheduler, so tests and the simulator run it on virtual time.
 */
import { timer, type SchedulerLike, type Subscription } from 'rxjs';
import type { Logger } from '../common/logger';
import { formatBinding, heaviestMember } from '../common/wire';
import type { Advisory } from '../generated/rebind/v1/Advisory';
import type { Move as AdvisoryMove } from '../generated/rebind/v1/Move';
import type { Group, PlannedBinding } from './group';
import type { Member } from './member';
import type { Registry } from './registry';
import type { Move } from './strategies/types';
import { VOUCH_MARGIN_MS, type Voucher } from './vouch';

/** Report intervals of silence after which a member is suspect. */
export const SUSPECT_INTERVALS = 1.5;

/** Least time between two warnings that a group's liveness check ran late, ms. */
export const LIVENESS_LAG_WARN_INTERVAL_MS = 60_000;

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
  /** Which offers of each per-request group were last sent, and when (ms). */
  private readonly offersSent = new WeakMap<Group, { version: number; atMs: number }>();
  private running = false;
  /** Told when a per-request group's bindings changed (xDS clients get theirs pushed). Set by the balancer. */
  offersChanged: ((group: Group) => void) | null = null;
  /** Delivers a plan's binding to an xDS client (an EDS push); false if the client is not one. Set by the balancer. */
  pushXds: ((group: Group, binding: PlannedBinding) => boolean) | null = null;
  /**
   * With several balancers (HA): whether this balancer may plan for and
   * advise a group (it is the group's proven leader). When it returns false
   * the analyzer makes no plan and sends the group's members no advisory of
   * any kind (moves, recalls, offers); liveness checks go on. null: always.
   */
  mayAdvise: ((group: string) => boolean) | null = null;
  /** Groups whose advisory state must be restated to every member at the next analysis (leadership just gained). */
  private readonly mustRestate = new Set<string>();
  /** When a late liveness check was last warned about (scheduler ms), and how many went unwarned since. */
  private lagWarnedAtMs = Number.NEGATIVE_INFINITY;
  private lagUnwarned = 0;

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
    // Liveness is checked four times per interval, so that a silent member is
    // noticed within 2 report intervals whatever the phase of its reports.
    const quarter = Math.max(1, Math.round(interval / 4));
    // One of the two timers fires at least every quarter interval. When the
    // event loop was blocked (or the process starved of its core), the timers
    // that fell due fire first, before the loop reads the sockets: the reports
    // that came during the block are still unread. So a check does not count
    // against members the time by which it ran late (past a quarter since the
    // previous tick); the reports are read right after it, and the next check,
    // on time, counts the whole silence again. Ticks that follow each other
    // within half a quarter (both timers due together, or firing one after
    // the other after a block) read no socket between them: they share the
    // larger excuse.
    let lastTickMs = this.scheduler.now();
    let lastExcusedMs = 0;
    const tick = (): number => {
      const nowMs = this.scheduler.now();
      const gapMs = nowMs - lastTickMs;
      const lateMs = Math.max(0, gapMs - quarter);
      lastExcusedMs = gapMs < quarter / 2 ? Math.max(lateMs, lastExcusedMs) : lateMs;
      lastTickMs = nowMs;
      if (lateMs >= interval) this.warnLate(group, lateMs, nowMs);
      return lastExcusedMs;
    };
    const analysis = timer(interval, interval, this.scheduler).subscribe(() => {
      const excusedMs = tick();
      this.analyze(group, this.scheduler.now(), excusedMs);
    });
    analysis.add(
      timer(quarter, quarter, this.scheduler).subscribe(() => {
        const excusedMs = tick();
        this.checkLiveness(group, this.scheduler.now(), excusedMs);
      }),
    );
    this.loops.set(group.name, analysis);
  }

  /** A liveness check of `group` ran `lateMs` (a report interval or more) late: worth an operator's attention, at most once per LIVENESS_LAG_WARN_INTERVAL_MS. */
  private warnLate(group: Group, lateMs: number, nowMs: number): void {
    if (nowMs - this.lagWarnedAtMs < LIVENESS_LAG_WARN_INTERVAL_MS) {
      this.lagUnwarned++;
      return;
    }
    this.log.warn(
      { group: group.name, lateMs, unwarned: this.lagUnwarned },
      `liveness check of group ${group.name} ran ${lateMs} ms late (the balancer's event loop was blocked or starved of CPU): that time was not counted against its members, whose reports it had not read yet`,
    );
    this.lagWarnedAtMs = nowMs;
    this.lagUnwarned = 0;
  }

  /**
   * A member silent for SUSPECT_INTERVALS report intervals is suspect (no new
   * client); after `missedReports` intervals it is removed and its stream
   * closed. A crashed replica's stream loss removes it at once instead.
   * Silence runs from the member's last report read, or from its attachment
   * (its hello accepted). `excusedMs`: how late this check ran (the
   * balancer's own lag, see startLoop); reports that came in that time are
   * not read yet, so it is not counted against the members. A member that
   * sent nothing during a block is removed at the first check on time after
   * it; while the balancer keeps time, after missedReports intervals.
   */
  checkLiveness(group: Group, nowMs: number, excusedMs = 0): void {
    if (this.registry.sweepIdle(group, nowMs)) return;
    const interval = group.config.reportIntervalMs;
    const deadline = group.config.missedReports * interval;
    for (const member of [...group.members.values()]) {
      const silentMs = nowMs - member.lastReportAtMs - excusedMs;
      if (silentMs > deadline) {
        const reason = `no load report for ${nowMs - member.lastReportAtMs} ms (${group.config.missedReports} report intervals of ${interval} ms${excusedMs > 0 ? `; this check ran ${excusedMs} ms late, not counted` : ''})`;
        this.registry.detach(member, reason);
        member.sink.close(14 /* UNAVAILABLE */, `rebind: ${reason}`);
      } else if (silentMs > SUSPECT_INTERVALS * interval && member.state !== 'SUSPECT') {
        group.suspect(member);
      }
    }
  }

  private advises(group: Group): boolean {
    if (this.mayAdvise === null) return true;
    if (this.mayAdvise(group.name)) return true;
    // Whoever leads next restates; so does this balancer if it leads again.
    this.mustRestate.add(group.name);
    return false;
  }

  /** One analysis of one group at time `nowMs` (`excusedMs`: how late it ran, see checkLiveness). */
  analyze(group: Group, nowMs: number, excusedMs = 0): Move[] {
    this.checkLiveness(group, nowMs, excusedMs);
    if (!this.advises(group)) {
      // Not the group's leader: no plan, no advisory. xDS clients of this balancer still learn of a per-request group's new offers.
      if (group.granularity === 'per-request') {
        group.refreshOffers();
        const sent = this.offersSent.get(group);
        if (sent?.version !== group.offersVersion) {
          this.offersSent.set(group, { version: group.offersVersion, atMs: sent?.atMs ?? 0 });
          this.offersChanged?.(group);
        }
      }
      this.events.analyzed?.(group, [], nowMs);
      return [];
    }
    if (this.mustRestate.delete(group.name)) {
      // Leadership just gained: the previous leader's recall and offers may be stale or unknown here; state ours to every member.
      this.log.info({ group: group.name }, `restating the advisory state of group ${group.name} to its ${group.members.size} member(s)`);
      group.refreshOffers();
      this.sendOffers(group, nowMs);
    }
    if (group.granularity === 'per-request') {
      // Per-request (direct) bindings: sent when they change, and restated before their vouchers run out.
      group.refreshOffers();
      const sent = this.offersSent.get(group);
      if (sent === undefined || sent.version !== group.offersVersion || nowMs - sent.atMs >= group.offersExpireMs(nowMs) / 2) this.sendOffers(group, nowMs);
    }
    const moves = group.plan(nowMs);
    if (moves.length > 0) this.sendMoves(group, moves, nowMs);
    this.events.analyzed?.(group, moves, nowMs);
    return moves;
  }

  private sendMoves(group: Group, moves: readonly Move[], nowMs: number): void {
    if (!this.advises(group)) return;
    const bySource = new Map<string, AdvisoryMove[]>();
    const add = (memberId: string, move: AdvisoryMove) => {
      const list = bySource.get(memberId) ?? [];
      list.push(move);
      bySource.set(memberId, list);
    };
    const plan = group.lastPlan?.atMs === nowMs ? group.lastPlan : null;
    const sets = new Set<string>();
    // A client that understands weighted bindings gets its whole new binding,
    // vouched as one unit, from every member it had load on: whichever it calls
    // next piggy-backs it on an OK response.
    for (const b of plan?.bindings ?? []) {
      if (!b.sets) continue;
      sets.add(b.clientId);
      // An xDS client's binding is its ClusterLoadAssignment: pushed on its own stream.
      if (this.pushXds?.(group, b) === true) continue;
      const text = formatBinding(b.members);
      const target = heaviestMember(b.members);
      const move: AdvisoryMove = { clientId: b.clientId, target, vouch: this.vouch(group, target), binding: text, bindingVouch: this.vouch(group, text) };
      for (const source of b.sources) add(source, move);
    }
    for (const m of moves) {
      if (sets.has(m.clientId)) continue;
      const target = group.members.get(m.to)?.address ?? '';
      add(m.from, { clientId: m.clientId, target, vouch: target !== '' ? this.vouch(group, target) : '' });
    }
    for (const [memberId, list] of bySource) {
      const member = group.members.get(memberId);
      if (member === undefined) continue;
      const advisory = this.advisory(group, member, nowMs, { moves: list, recallAll: false });
      if (member.sink.sendAdvisory(advisory)) {
        group.counters.advisories++;
        group.counters.movesSent += list.length;
        const shown = list.map((m) => ({ clientId: m.clientId ?? '', target: m.binding !== undefined && m.binding !== '' ? m.binding : (m.target ?? '') }));
        this.events.advised?.(group, member, shown, nowMs);
        this.log.debug({ group: group.name, member: member.id, moves: shown, at: nowMs }, `advisory ${String(advisory.seq)} to ${member.id}: move ${list.length} client(s)`);
      } else {
        this.registry.detach(member, 'advisory could not be delivered: control stream gone');
      }
    }
  }

  /** The balancer's voucher for `target` (an address or a binding string) in this group (null voucher: none). */
  private vouch(group: Group, target: string): string {
    // Wall-clock expiry (not the scheduler's time): clients check vouchers against their own clocks.
    return this.voucher === null ? '' : this.voucher.vouch(group.name, target, group.config.advisoryExpireMs + VOUCH_MARGIN_MS);
  }

  /**
   * An advisory to `member` restating what its replica must do: the given
   * moves and recall, and the group's offer for it (every advisory restates
   * the offer in force; none withdraws it).
   */
  private advisory(group: Group, member: Member, nowMs: number, body: { moves: AdvisoryMove[]; recallAll: boolean }): Advisory {
    const seq = (this.advisorySeq.get(member) ?? 0) + 1;
    this.advisorySeq.set(member, seq);
    const offer = group.offerFor(member, nowMs);
    // The voucher may be a cached one, half used up: the offer ends before it does (see offersExpireMs).
    const offerVouch = offer === null ? '' : this.vouch(group, offer);
    const offerExpireMs = offer === null ? 0 : group.offersExpireMs(nowMs);
    // The key chain rides on every advisory: the replica sends it beside each voucher, so clients that pinned an older key follow.
    const keyChain = this.voucher === null ? '' : this.voucher.chain;
    return { seq, ...body, expireMs: group.config.advisoryExpireMs, offerBinding: offer ?? '', offerVouch, offerExpireMs, keyChain };
  }

  /** Sends every member of a per-request group its offer (the binding of its shard). */
  sendOffers(group: Group, nowMs: number): void {
    if (!this.advises(group)) return;
    const sent = this.offersSent.get(group);
    if (sent?.version !== group.offersVersion) this.offersChanged?.(group);
    this.offersSent.set(group, { version: group.offersVersion, atMs: nowMs });
    for (const member of [...group.members.values()]) {
      if (!member.sink.sendAdvisory(this.advisory(group, member, nowMs, { moves: [], recallAll: group.granularity === 'per-request' }))) {
        this.registry.detach(member, 'advisory could not be delivered: control stream gone');
      }
    }
  }

  /**
   * Sends a recall (or its end) to every member of a group. With it go the
   * offers: a group switching to per-request offers its members' bindings
   * (clients that understand sets stay direct); one switching away has each
   * member offer itself alone for advisoryExpireMs, so those clients come
   * down to one member each without a failed call.
   */
  sendRecall(group: Group, recallAll: boolean): void {
    const nowMs = this.scheduler.now();
    if (!this.advises(group)) {
      // The leader sends the recall; keep the local view of offers current for this balancer's binds.
      group.refreshOffers();
      if (!recallAll) group.selfOfferUntilMs = nowMs + group.config.advisoryExpireMs;
      return;
    }
    group.refreshOffers();
    if (recallAll) this.offersSent.set(group, { version: group.offersVersion, atMs: nowMs });
    else group.selfOfferUntilMs = nowMs + group.config.advisoryExpireMs;
    for (const member of [...group.members.values()]) this.sendRecallTo(group, member, recallAll);
    this.events.recalled?.(group, recallAll);
  }

  sendRecallTo(group: Group, member: Member, recallAll: boolean): void {
    if (!this.advises(group)) return;
    if (!member.sink.sendAdvisory(this.advisory(group, member, this.scheduler.now(), { moves: [], recallAll }))) {
      this.registry.detach(member, 'advisory could not be delivered: control stream gone');
    }
  }
}

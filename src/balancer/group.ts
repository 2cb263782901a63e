/**
 * A replica group at run time: its members, their dampened loads and
 * per-client rates, the strategy, and the decisions made on them. All
 * methods are synchronous and take the time as an argument, so the analyzer
 * and the simulator can drive a group on virtual time.
 */
import { canonicalAddress } from '../common/address';
import type { Logger } from '../common/logger';
import type { LoadReport__Output } from '../generated/rebind/v1/LoadReport';
import type { GroupConfig, Granularity } from './config';
import { BindingLedger } from './ledger';
import { dampen, shiftLoad } from './load-table';
import { loadOf, perCallShare } from './metrics';
import { Member } from './member';
import { strategyFactory } from './strategies/index';
import type { ClientLoad, Move, Strategy } from './strategies/types';

/** Counters a group keeps for the admin API and the metrics endpoint (totals since start). */
export interface GroupCounters {
  /** Forwards the balancer sent (bindings). */
  forwards: number;
  /** Forwards the members sent (advisory moves, recalls, drains), as their reports tell. */
  replicaForwards: number;
  proxiedCalls: number;
  advisories: number;
  /** Client moves in the advisories sent. */
  movesSent: number;
  movesPlanned: number;
  /** Bindings handed out by the balancer. */
  binds: number;
  /** Bindings of a client the balancer had bound to another member before. */
  rebinds: number;
  reports: number;
  /** Replicas that attached (hello accepted). */
  attaches: number;
  /** Attaches of a replica id that had attached before (a control stream re-established). */
  reattaches: number;
}

/** What a group tells about its decisions as they happen (metrics, dashboard). */
export interface GroupEvents {
  stateChanged?(group: Group, member: Member, from: Member['state'], to: Member['state']): void;
}

export class Group {
  readonly members = new Map<string, Member>();
  readonly counters: GroupCounters = {
    forwards: 0,
    replicaForwards: 0,
    proxiedCalls: 0,
    advisories: 0,
    movesSent: 0,
    movesPlanned: 0,
    binds: 0,
    rebinds: 0,
    reports: 0,
    attaches: 0,
    reattaches: 0,
  };
  events: GroupEvents = {};
  /** Created on a replica's first attach rather than configured (removed again once idle). */
  autoCreated = false;
  /** Since when an auto-created group has had no member (ms), or null. */
  emptySinceMs: number | null = null;
  /**
   * Who is bound where and since when, binds and calls on their way, holds,
   * transits and per-caller pending-bind credit: every client-keyed table of
   * the group (see ledger.ts for their bounds).
   */
  readonly ledger = new BindingLedger(() => this.config.reportIntervalMs);
  private strategy: Strategy;
  private sequence = 0;
  private eligibleCache = new Map<string, Member[]>();
  /**
   * Cached {@link expectedCallLoad} and {@link expectedClientLoad}: they walk
   * every member, and a large group receives reports every millisecond, so
   * they are recomputed at most every {@link estimatesMaxAgeMs} (and at once
   * when membership changes), not per report or per choice.
   */
  private callLoadCache: number | null = null;
  private clientLoadCache: number | null = null;
  private estimatesAtMs = Number.NEGATIVE_INFINITY;
  /** Members by canonical address. */
  private readonly byAddress = new Map<string, Member>();

  constructor(
    public config: GroupConfig,
    private readonly log: Logger,
    private readonly random: () => number = Math.random,
  ) {
    this.strategy = Group.createStrategy(config);
  }

  private static createStrategy(config: GroupConfig): Strategy {
    const factory = strategyFactory(config.strategy.name);
    if (factory === undefined) throw new Error(`unknown strategy ${config.strategy.name}`);
    return factory.create(config.strategy.params);
  }

  get name(): string {
    return this.config.name;
  }

  get granularity(): Granularity {
    return this.config.granularity;
  }

  get strategyName(): string {
    return this.strategy.name;
  }

  /** d of the dampening: the strategy's own `dampening` parameter if given, else the group's. */
  get dampening(): number {
    return this.config.strategy.params['dampening'] ?? this.config.dampening;
  }

  /** Why the last choice found no member, for the caller's error message. */
  lastRefusal: string | null = null;

  /** Pending-bind credit a caller may take per report interval (see {@link BindingLedger.maxPendingBindsPerCaller}). */
  get maxPendingBindsPerCaller(): number {
    return this.ledger.maxPendingBindsPerCaller;
  }
  set maxPendingBindsPerCaller(value: number) {
    this.ledger.maxPendingBindsPerCaller = value;
  }
  /** The last bind got no pending credit: its caller was over its share (counted by the caller). */
  lastCreditCapped = false;

  /** Method paths served by at least one member. */
  methodPaths(): Set<string> {
    const paths = new Set<string>();
    for (const m of this.members.values()) for (const p of m.methodPaths) paths.add(p);
    return paths;
  }

  /** Changes the strategy (already validated). Takes effect on the next decision. */
  setStrategy(name: string, params: Record<string, number>): void {
    const next: GroupConfig = { ...this.config, strategy: { name, params } };
    this.invalidateEstimates();
    this.strategy = Group.createStrategy(next);
    this.config = next;
  }

  setGranularity(granularity: Granularity): void {
    this.config = { ...this.config, granularity };
  }

  /** The member attached at `address` (any spelling of it), if any. */
  memberAt(address: string): Member | undefined {
    return this.byAddress.get(canonicalAddress(address) ?? address);
  }

  addMember(member: Member): void {
    member.pending = this.ledger.trackMember(member.id);
    this.members.set(member.id, member);
    this.byAddress.set(canonicalAddress(member.address) ?? member.address, member);
    this.eligibleCache.clear();
    this.invalidateEstimates();
  }

  removeMember(id: string): Member | undefined {
    const member = this.members.get(id);
    if (member !== undefined) {
      this.members.delete(id);
      const key = canonicalAddress(member.address) ?? member.address;
      if (this.byAddress.get(key) === member) this.byAddress.delete(key);
      this.eligibleCache.clear();
      this.invalidateEstimates();
      this.ledger.forgetMember(id);
    }
    return member;
  }

  /**
   * The member an affinity token names (same address, same replica id), if
   * it is still attached. Draining members still own their calls.
   */
  ownerOf(address: string, replicaId: string): Member | null {
    const m = this.memberAt(address);
    return m !== undefined && m.replicaId === replicaId ? m : null;
  }

  /** Members that serve `path` and take new clients. */
  eligible(path: string): Member[] {
    let list = this.eligibleCache.get(path);
    if (list === undefined) {
      list = [...this.members.values()].filter((m) => m.methodPaths.has(path) && m.state !== 'DRAINING' && m.state !== 'SUSPECT');
      this.eligibleCache.set(path, list);
    }
    return list;
  }

  private setState(member: Member, state: Member['state']): void {
    if (member.state === state) return;
    const level = state === 'SUSPECT' ? 'warn' : 'info';
    this.log[level]({ group: this.name, member: member.id, address: member.address }, `member ${member.id}: ${member.state} -> ${state}`);
    const ineligible = (s: Member['state']) => s === 'DRAINING' || s === 'SUSPECT';
    if (ineligible(member.state) || ineligible(state)) this.eligibleCache.clear();
    const from = member.state;
    member.state = state;
    this.events.stateChanged?.(this, member, from, state);
  }

  /** Marks a member that stopped reporting; it gets no new client until it reports again. */
  suspect(member: Member): void {
    if (member.state !== 'DRAINING') this.setState(member, 'SUSPECT');
  }

  /**
   * Chooses the member for a new binding (`kind` "bind") or for one proxied
   * call ("call"). Returns null when no member serves the path. A client
   * bound less than one report interval ago gets the same member again.
   */
  choose(path: string, kind: 'bind' | 'call', clientId: string | null = null, nowMs = 0, avoid?: ReadonlySet<string>, caller?: string): Member | null {
    this.lastCreditCapped = false;
    let members = this.eligible(path);
    if (members.length === 0) {
      this.lastRefusal = `group "${this.name}" has no replica available for ${path}`;
      return null;
    }
    // Members the client asked not to be sent to again, unless nobody else is left.
    if (avoid !== undefined && avoid.size > 0) {
      const others = members.filter((m) => !avoid.has(canonicalAddress(m.address) ?? m.address));
      if (others.length > 0) members = others;
    }
    if (kind === 'bind' && clientId !== null) {
      const recentId = this.ledger.recentBinding(clientId, nowMs)?.members[0]?.memberId;
      const recent = recentId === undefined ? undefined : members.find((m) => m.id === recentId);
      if (recent !== undefined) return recent;
    }
    if (nowMs - this.estimatesAtMs >= this.estimatesMaxAgeMs) this.invalidateEstimates(nowMs);
    const index = this.strategy.choose({
      members,
      sequence: this.sequence,
      random: this.random,
      expectedClientLoad: this.expectedClientLoad(),
      expectedCallLoad: this.expectedCallLoad(),
    });
    this.sequence++;
    if (index < 0) {
      this.lastRefusal = `every replica of group "${this.name}" is refused by strategy ${this.strategy.name} (at or above its reject threshold)`;
      return null;
    }
    const member = members[index] ?? members[0]!;
    if (kind === 'call') {
      this.ledger.calledThrough(member.id);
      return member;
    }
    const outcome = this.ledger.bound(clientId, member.id, nowMs, caller, avoid !== undefined && avoid.size > 0 ? 'avoid' : 'bind');
    if (!outcome.credited) this.lastCreditCapped = true;
    if (clientId !== null) {
      this.counters.binds++;
      if (outcome.rebind) this.counters.rebinds++;
    }
    return member;
  }

  /** Load a new client is expected to add: group load per known client. */
  private expectedClientLoad(): number {
    if (this.clientLoadCache !== null) return this.clientLoadCache;
    let load = 0;
    let clients = 0;
    for (const m of this.members.values()) {
      load += m.load;
      // top_clients lists at most topClients of them; client_count says how many there were.
      clients += Math.max(m.clients.size, m.latest?.clientCount ?? 0);
    }
    this.clientLoadCache = clients > 0 && load > 0 ? load / clients : 1;
    return this.clientLoadCache;
  }

  private get estimatesMaxAgeMs(): number {
    return Math.min(100, this.config.reportIntervalMs / 4);
  }

  private invalidateEstimates(nowMs = Number.NEGATIVE_INFINITY): void {
    this.callLoadCache = null;
    this.clientLoadCache = null;
    this.estimatesAtMs = nowMs;
  }

  /** Load one proxied call is expected to add until the next report. */
  private expectedCallLoad(): number {
    if (this.callLoadCache !== null) return this.callLoadCache;
    let share = 0;
    let n = 0;
    for (const m of this.members.values()) {
      if (m.latest === null) continue;
      share += perCallShare(m.latest, this.config.metric);
      n++;
    }
    const perCall = n > 0 && share > 0 ? share / n : 1;
    this.callLoadCache = (perCall * 1000) / this.config.reportIntervalMs;
    return this.callLoadCache;
  }

  /**
   * Applies one (already validated) load report of `member`.
   *
   * Clients in transit (moved by a plan, not yet fully arrived) are counted
   * where the plan put them: the source's report may still show some of
   * their calls and the target's shows only part of an interval, and taking
   * either at face value would make the next analysis see an imbalance that
   * the move has already fixed. So the source's raw load leaves them out and
   * the target's counts them at their planned load until the transit ends:
   * once the client no longer shows at the source and has shown at the
   * target for a full report interval (or its hold time ran out).
   */
  applyReport(member: Member, report: LoadReport__Output, nowMs: number): void {
    const d = this.dampening;
    const share = perCallShare(report, this.config.metric);
    let raw = loadOf(report, this.config.metric);
    const listed = new Set<string>();
    for (const c of report.topClients) {
      listed.add(c.clientId);
      const transit = this.ledger.transitOf(c.clientId);
      if (transit !== undefined && (transit.from === member.id || transit.to === member.id)) raw -= c.callsPerS * share;
    }
    raw += this.ledger.settleTransits(member.id, listed, nowMs);
    raw = Math.max(0, raw);
    member.rawLoad = raw;
    member.load = dampen(member.reported ? member.load : undefined, raw, d);
    member.reported = true;
    member.reports++;
    this.counters.reports++;
    this.counters.replicaForwards += report.forwards;
    member.lastSeq = report.seq;
    member.lastReportAtMs = nowMs;
    member.latest = report;
    this.ledger.reported(member.id);
    if (member.settleLeft > 0) member.settleLeft--;
    for (const c of report.topClients) {
      const transit = this.ledger.transitOf(c.clientId);
      // A client on its way out is no longer this member's; one on its way in keeps its planned load.
      if (transit?.from === member.id || transit?.to === member.id) continue;
      const previous = member.clients.get(c.clientId);
      const load = c.callsPerS * share;
      if (previous === undefined) member.clients.set(c.clientId, { load });
      else previous.load = dampen(previous.load, load, d);
    }
    for (const id of member.clients.keys()) {
      if (!listed.has(id) && this.ledger.transitOf(id)?.to !== member.id) member.clients.delete(id);
    }
    if (report.draining) this.setState(member, 'DRAINING');
    else if (member.state === 'ATTACHED' || member.state === 'SUSPECT' || (member.state === 'SHEDDING' && member.settleLeft === 0)) this.setState(member, 'NOMINAL');
  }

  /** Whether the last plan has settled (every member reported enough since). */
  settled(): boolean {
    for (const m of this.members.values()) if (m.settleLeft > 0) return false;
    return true;
  }

  /**
   * Runs the strategy's planner on the current loads and applies the plan to
   * the group's own view (dampened loads shifted, moved clients held).
   * Returns the moves, for the caller to turn into advisories.
   */
  plan(nowMs: number): Move[] {
    if (this.config.granularity !== 'on-demand' || !this.strategy.adaptive || !this.settled()) return [];
    this.ledger.expireHolds(nowMs);
    const members = [...this.members.values()].filter((m) => m.reported && m.state !== 'DRAINING' && m.state !== 'SUSPECT');
    if (members.length < 2) return [];
    // Too little evidence: a few calls per interval are noise, not load.
    let calls = 0;
    for (const m of members) calls += ((m.latest?.callsPerS ?? 0) * (m.latest?.intervalMs ?? 0)) / 1000;
    if (calls / members.length < this.config.planMinCalls) return [];
    for (const m of members) m.recentlyShed = nowMs - m.lastShedAtMs < this.config.holdMs;
    const clients: ClientLoad[] = [];
    for (const m of members) {
      for (const [clientId, c] of m.clients) clients.push({ clientId, memberId: m.id, load: c.load, held: this.ledger.isHeld(clientId, nowMs) });
    }
    const moves = this.strategy.plan({ members, clients, nowMs, random: this.random });
    for (const move of moves) this.applyMove(move, nowMs);
    if (moves.length > 0) {
      this.counters.movesPlanned += moves.length;
      this.log.debug({ group: this.name, moves }, `plan: ${moves.length} move(s)`);
    }
    return moves;
  }

  private applyMove(move: Move, nowMs: number): void {
    const from = this.members.get(move.from);
    const to = this.members.get(move.to);
    if (from === undefined || to === undefined) return;
    [from.load, to.load] = shiftLoad(from.load, to.load, move.load);
    from.clients.delete(move.clientId);
    to.clients.set(move.clientId, { load: move.load });
    this.ledger.hold(move.clientId, nowMs + this.config.holdMs);
    this.ledger.startTransit(move.clientId, { from: move.from, to: move.to, load: move.load, leftSource: false, reportsAtTarget: 0, untilMs: nowMs + this.config.holdMs });
    for (const m of [from, to]) m.settleLeft = Math.max(m.settleLeft, this.config.settleReports);
    from.lastShedAtMs = nowMs;
    this.setState(from, 'SHEDDING');
  }
}

/**
 * A replica group at run time: its members, their dampened loads and
 * per-client rates, the strategy, and the decisions made on them. All
 * methods are synchronous and take the time as an argument, so the analyzer
 * and the simulator can drive a group on virtual time.
 */
import { MAX_BALANCERS } from '../common/balancers';
import { canonicalAddress } from '../common/address';
import { formatBinding, MAX_BINDING_MEMBERS, toPermille, type BindingMember } from '../common/wire';
import { VOUCH_MARGIN_MS } from './vouch';
import { bindingMembers, clampedCapacities, offersDiffer, shardBinding, shards } from './direct-bindings';
import type { Logger } from '../common/logger';
import type { LoadReport__Output } from '../generated/rebind/v1/LoadReport';
import type { GroupConfig, Granularity } from './config';
import { BindingLedger, type BindingShare, type TransitLeg } from './ledger';
import { dampen, shiftLoad } from './load-table';
import { loadOf, perCallShare } from './metrics';
import { keepReport, Member, MemberStore, type MemberClient } from './member';
import { strategyFactory } from './strategies/index';
import type { ChooseInput, ClientLoad, CompactLoads, Move, PlanInput, Strategy } from './strategies/types';

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
  /** Times a member was set aside because clients gave it up (see {@link Group.noteAvoided}). */
  membersAvoided: number;
}

/** What a group tells about its decisions as they happen (metrics, dashboard). */
export interface GroupEvents {
  stateChanged?(group: Group, member: Member, from: Member['state'], to: Member['state']): void;
}

/** A client's binding after a plan, as the analyzer sends it. */
export interface PlannedBinding {
  readonly clientId: string;
  /** The client understands weighted bindings: its binding is piggy-backed, vouched as one unit. */
  readonly sets: boolean;
  /** Its members after the plan, with addresses and per-mille weights. */
  readonly members: readonly (BindingMember & { memberId: string })[];
  /** The members it had load on before the plan: they deliver the new binding. */
  readonly sources: readonly string[];
}

/** The planner's last decision, for operators (dashboard, status) and the analyzer. */
export interface PlanRecord {
  readonly atMs: number;
  readonly moves: readonly Move[];
  readonly bindings: readonly PlannedBinding[];
  /** Σ(L−μ)² over the planned members before the plan and as the plan expects it after (group metric squared). */
  readonly dispersionBefore: number;
  readonly dispersionAfter: number;
}

/** Distinct clients giving a member up (rebind-avoid) within a hold time that set it aside. */
export const AVOIDS_TO_SET_ASIDE = 2;
/** A member whose mean latency is this many times the other members' median is set aside by one client's avoid. */
export const SLOW_LATENCY_FACTOR = 4;
/** Client ids remembered per member as having avoided it (enough to count to {@link AVOIDS_TO_SET_ASIDE}). */
const MAX_AVOIDERS_PER_MEMBER = 8;

/** Up to this many top clients in a report, whether a client is listed is found by a scan (no set per report). */
const SMALL_TOP_CLIENTS = 16;

/** Whether `id` is among `top`'s client ids. */
function listedIn(top: readonly { clientId: string }[], id: string): boolean {
  for (let i = 0; i < top.length; i++) if (top[i]!.clientId === id) return true;
  return false;
}

/**
 * A peer count as the bind choice uses it: an integer 1..MAX_BALANCERS (a
 * replica attaches to at most that many balancers, so no more bind to one
 * member); anything else (NaN, 0, a hook that failed) counts as 1.
 */
export function peerCount(n: number): number {
  return Number.isFinite(n) && n >= 1 ? Math.min(MAX_BALANCERS, Math.floor(n)) : 1;
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
    membersAvoided: 0,
  };
  events: GroupEvents = {};
  /** Created on a replica's first attach rather than configured (removed again once idle). */
  autoCreated = false;
  /** Since when an auto-created group has had no member (ms), or null. */
  emptySinceMs: number | null = null;
  /**
   * Live balancers binding to this group's members (the registry's
   * `peerBalancers`; 1 without HA): the bind choice counts its own pending
   * binds that many times (see strategies/choose.ts).
   */
  peerBalancers: () => number = () => 1;
  /**
   * Who is bound where and since when, binds and calls on their way, holds,
   * transits and per-caller pending-bind credit: every client-keyed table of
   * the group (see ledger.ts for their bounds).
   */
  readonly ledger = new BindingLedger(() => this.config.reportIntervalMs);
  private strategy: Strategy;
  private sequence = 0;
  /** Eligible members by method path, with their slots in {@link store} (dropped whenever membership or a member's eligibility changes). */
  private eligibleCache = new Map<string, { readonly members: Member[]; readonly compact: CompactLoads }>();
  /** The members' loads and pending counts side by side, for the choice (see MemberStore). */
  private readonly store = new MemberStore();
  /** The choice's input, reused: a choice runs for every bind and proxied call. */
  private readonly chooseInput: { -readonly [K in keyof ChooseInput]: ChooseInput[K] } = {
    members: [],
    sequence: 0,
    random: Math.random,
    expectedClientLoad: 1,
    expectedCallLoad: 1,
    peerBalancers: 1,
    compact: undefined,
  };
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
  /**
   * The members each client has an entry on (its Member.clients), in no
   * particular order: a plan reads a moved client's portions from it and
   * the planner a client's other members, instead of a pass over every
   * member's clients. Kept up to date wherever a member's clients change
   * (see {@link setClient}, {@link deleteClient}, {@link removeMember}), so
   * it has exactly the entries of the members' client maps: bounded as they
   * are (maxMembers x the clients a report may name, validate.ts), and a
   * client leaves it when it leaves its last member. A client on one member
   * (most of them) maps to the member itself, not an array: 45 bytes per
   * client of heap (100,000 clients, 120,000 entries), half of what an
   * array per client took.
   */
  private readonly clientIndex = new Map<string, Member | Member[]>();
  /** Next {@link Member.ordinal} (members' order in {@link members}). */
  private nextOrdinal = 0;
  /** The last plan that moved clients, if any. */
  lastPlan: PlanRecord | null = null;
  /**
   * Per-request (direct) bindings in force, by member id: the binding text of
   * the member's shard (members in shards of at most 16, each a binding of
   * every member of the shard weighted by capacity). Null outside per-request.
   */
  private offers: Map<string, string> | null = null;
  /** Membership changed since the offers were computed: the next direct bind recomputes them first. */
  private offersStale = false;
  /** Increases whenever the offers change (the analyzer sends them to the members when it sees a new one). */
  offersVersion = 0;
  /** The ledger's share list of each offered binding (see {@link directBinding}); bounded, cleared when full. */
  private readonly offerShares = new Map<string, readonly BindingShare[]>();
  /** Dampened capacity estimates (calls/s per unit of load), by member id. */
  private readonly capacity = new Map<string, number>();
  /**
   * Clients that recently gave up a member (they asked, with rebind-avoid,
   * to be bound elsewhere), by member id: who and when the latest did. At
   * most {@link MAX_AVOIDERS_PER_MEMBER} ids per member; dropped with the
   * member.
   */
  private readonly avoiders = new Map<string, { clients: Set<string>; lastMs: number }>();
  /**
   * The latest `setAsideUntilMs` {@link noteAvoided} gave any member (ms):
   * before then a choice looks for set-aside members; after it, none can be
   * (a scan of every member per bind saved).
   */
  private setAsideUntilLatestMs = Number.NEGATIVE_INFINITY;
  /** After a switch away from per-request, members offer clients a binding to themselves alone until then (ms). */
  selfOfferUntilMs = Number.NEGATIVE_INFINITY;

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
    const replaced = this.members.get(member.id);
    if (replaced !== undefined && replaced !== member) this.leaveStore(replaced);
    let slot = member.slotIn(this.store);
    if (slot < 0) slot = this.store.allocate();
    member.placeIn(this.store, slot);
    member.pending = this.ledger.trackMember(member.id, this.store, slot);
    member.ordinal = this.nextOrdinal++;
    if (replaced !== undefined && replaced !== member) for (const clientId of replaced.clients.keys()) this.unindex(replaced, clientId);
    this.members.set(member.id, member);
    // Entries it got before it joined (none, as the registry adds members) are indexed now.
    for (const clientId of member.clients.keys()) this.index(member, clientId);
    this.byAddress.set(canonicalAddress(member.address) ?? member.address, member);
    this.eligibleCache.clear();
    this.invalidateEstimates();
    this.offersStale = true;
  }

  removeMember(id: string): Member | undefined {
    const member = this.members.get(id);
    if (member !== undefined) {
      this.members.delete(id);
      this.leaveStore(member);
      const key = canonicalAddress(member.address) ?? member.address;
      if (this.byAddress.get(key) === member) this.byAddress.delete(key);
      this.eligibleCache.clear();
      this.invalidateEstimates();
      this.ledger.forgetMember(id);
      this.avoiders.delete(id);
      for (const clientId of member.clients.keys()) this.unindex(member, clientId);
      this.offersStale = true;
    }
    return member;
  }

  /** Gives back a leaving member's slot; its later writes no longer reach the store. */
  private leaveStore(member: Member): void {
    const slot = member.slotIn(this.store);
    if (slot < 0) return;
    member.placeIn(null, -1);
    this.store.release(slot);
  }

  /** The one writer of a member's dampened load: the member and its slot in the store (which the choice reads). */
  private setLoad(member: Member, load: number): void {
    member.load = load;
    const slot = member.slotIn(this.store);
    if (slot >= 0) this.store.loads[slot] = load;
  }

  /** Slots in use in the member store (for tests: one per member). */
  get storeSlots(): number {
    return this.store.size;
  }

  /** Distinct clients with an entry on some member (the size of the client index; for tests and status). */
  get indexedClients(): number {
    return this.clientIndex.size;
  }

  /** The members `clientId` has an entry on (any order), or undefined for none. */
  membersOfClient(clientId: string): readonly Member[] | undefined {
    const on = this.clientIndex.get(clientId);
    return on === undefined || Array.isArray(on) ? on : [on];
  }

  /** Sets a member's entry for a client, indexing a new one. */
  private setClient(member: Member, clientId: string, entry: MemberClient): void {
    const size = member.clients.size;
    member.clients.set(clientId, entry);
    if (member.clients.size !== size && this.members.get(member.id) === member) this.index(member, clientId);
  }

  private index(member: Member, clientId: string): void {
    const on = this.clientIndex.get(clientId);
    if (on === undefined) this.clientIndex.set(clientId, member);
    else if (Array.isArray(on)) on.push(member);
    else this.clientIndex.set(clientId, [on, member]);
  }

  /** Drops a member's entry for a client, and the member from the client's index entry. */
  private deleteClient(member: Member, clientId: string): void {
    if (member.clients.delete(clientId)) this.unindex(member, clientId);
  }

  private unindex(member: Member, clientId: string): void {
    const on = this.clientIndex.get(clientId);
    if (on === member) this.clientIndex.delete(clientId);
    else if (Array.isArray(on)) {
      const n = on.indexOf(member);
      if (n < 0) return;
      on.splice(n, 1);
      if (on.length === 1) this.clientIndex.set(clientId, on[0]!);
    }
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
    return this.eligibleEntry(path).members;
  }

  private eligibleEntry(path: string): { readonly members: Member[]; readonly compact: CompactLoads } {
    let entry = this.eligibleCache.get(path);
    if (entry === undefined) {
      const members = [...this.members.values()].filter((m) => m.methodPaths.has(path) && m.state !== 'DRAINING' && m.state !== 'SUSPECT');
      // The store's arrays are replaced only as it grows, when a member joins, which drops this cache.
      const slots = Int32Array.from(members, (m) => m.slotIn(this.store));
      entry = { members, compact: { slots, loads: this.store.loads, pendingBinds: this.store.pendingBinds, pendingCalls: this.store.pendingCalls } };
      this.eligibleCache.set(path, entry);
    }
    return entry;
  }

  private setState(member: Member, state: Member['state']): void {
    if (member.state === state) return;
    const level = state === 'SUSPECT' ? 'warn' : 'info';
    this.log[level]({ group: this.name, member: member.id, address: member.address }, `member ${member.id}: ${member.state} -> ${state}`);
    const ineligible = (s: Member['state']) => s === 'DRAINING' || s === 'SUSPECT';
    if (ineligible(member.state) !== ineligible(state)) {
      this.eligibleCache.clear();
      // Per-request bindings name the members taking clients: recomputed at the next direct bind.
      this.offersStale = true;
    }
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
    const eligible = this.eligibleEntry(path);
    let members = eligible.members;
    if (members.length === 0) {
      this.lastRefusal = `group "${this.name}" has no replica available for ${path}`;
      return null;
    }
    // Members the client asked not to be sent to again, unless nobody else is left.
    if (avoid !== undefined && avoid.size > 0) {
      if (kind === 'bind' && clientId !== null) for (const address of avoid) this.noteAvoided(address, clientId, nowMs);
      const others = members.filter((m) => !avoid.has(canonicalAddress(m.address) ?? m.address));
      if (others.length > 0) members = others;
    }
    // Members clients are giving up get no new client while any other can take it.
    if (this.setAsideUntilLatestMs > nowMs && members.some((m) => m.setAsideUntilMs > nowMs)) {
      const others = members.filter((m) => m.setAsideUntilMs <= nowMs);
      if (others.length > 0) members = others;
    }
    if (kind === 'bind' && clientId !== null) {
      const recentId = this.ledger.recentBinding(clientId, nowMs)?.members[0]?.memberId;
      const recent = recentId === undefined ? undefined : members.find((m) => m.id === recentId);
      if (recent !== undefined) return recent;
    }
    if (nowMs - this.estimatesAtMs >= this.estimatesMaxAgeMs) this.invalidateEstimates(nowMs);
    const input = this.chooseInput;
    input.members = members;
    input.sequence = this.sequence;
    input.random = this.random;
    input.expectedClientLoad = this.expectedClientLoad();
    input.expectedCallLoad = this.expectedCallLoad();
    input.peerBalancers = kind === 'bind' ? peerCount(this.peerBalancers()) : 1;
    // The slots fit the cached list only (not one filtered for avoid or set-aside members).
    input.compact = members === eligible.members ? eligible.compact : undefined;
    const index = this.strategy.choose(input);
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
    const top = report.topClients;
    // The listed clients as a set only when a lookup by id is needed many times (many top clients,
    // or transits to settle); the usual few are scanned: no set per report.
    const listed = top.length > SMALL_TOP_CLIENTS || this.ledger.transitCount > 0 ? new Set<string>() : null;
    for (const c of top) {
      listed?.add(c.clientId);
      if (this.ledger.transitOf(c.clientId)?.legs.has(member.id)) raw -= c.callsPerS * share;
    }
    // With no transit, settleTransits has nothing to settle and adds nothing.
    if (listed !== null && this.ledger.transitCount > 0) raw += this.ledger.settleTransits(member.id, listed, nowMs);
    raw = Math.max(0, raw);
    member.rawLoad = raw;
    this.setLoad(member, dampen(member.reported ? member.load : undefined, raw, d));
    member.reported = true;
    member.reports++;
    this.counters.reports++;
    this.counters.replicaForwards += report.forwards;
    member.lastSeq = report.seq;
    member.lastReportAtMs = nowMs;
    member.latest = keepReport(member.latest, report);
    this.ledger.reported(member.id);
    this.updateCapacity(member, report);
    if (member.settleLeft > 0) member.settleLeft--;
    for (const c of report.topClients) {
      // A client a plan is moving keeps its planned load here until it has settled.
      if (this.ledger.transitOf(c.clientId)?.legs.has(member.id)) continue;
      const previous = member.clients.get(c.clientId);
      const load = c.callsPerS * share;
      if (previous === undefined) this.setClient(member, c.clientId, { load, sets: c.sets });
      else {
        previous.load = dampen(previous.load, load, d);
        previous.sets = c.sets;
      }
    }
    // Ids, then a lookup: iterating entries makes a [id, client] pair per client per report.
    for (const id of member.clients.keys()) {
      const c = member.clients.get(id)!;
      // An xDS client is not in replicas' reports: its load comes from LRS, and goes when LRS stops telling it.
      if (c.lrsAtMs !== undefined) {
        if (nowMs - c.lrsAtMs > 3 * this.config.reportIntervalMs) this.deleteClient(member, id);
        continue;
      }
      if (!(listed !== null ? listed.has(id) : listedIn(top, id)) && !((this.ledger.transitOf(id)?.legs.get(member.id)?.load ?? 0) > 0)) this.deleteClient(member, id);
    }
    if (report.draining) this.setState(member, 'DRAINING');
    else if (member.state === 'ATTACHED' || member.state === 'SUSPECT' || (member.state === 'SHEDDING' && member.settleLeft === 0)) this.setState(member, 'NOMINAL');
  }

  /**
   * A client gave up the member at `address` and asks to be bound elsewhere
   * (its calls piled up there: slow or hung). Plain calls/s make such a
   * member look underloaded, so plans would send it more clients, each of
   * which would give it up again. When {@link AVOIDS_TO_SET_ASIDE} distinct
   * clients did so within a hold time — or one did and the member's mean
   * latency is {@link SLOW_LATENCY_FACTOR} times the others' median — the
   * member is set aside for `holdMs` from the latest avoid: no new clients,
   * no plan moves to or from it. Its bound clients stay (each gives it up by
   * itself if it must). Clients can mint ids, so one party can set members
   * aside; the cost is bounded: never all members (binds then ignore it),
   * and only for a hold time after its last avoid.
   */
  noteAvoided(address: string, clientId: string, nowMs: number): void {
    const member = this.memberAt(address);
    if (member === undefined) return;
    let entry = this.avoiders.get(member.id);
    if (entry === undefined || nowMs - entry.lastMs > this.config.holdMs) {
      entry = { clients: new Set(), lastMs: nowMs };
      this.avoiders.set(member.id, entry);
    }
    if (entry.clients.size < MAX_AVOIDERS_PER_MEMBER) entry.clients.add(clientId);
    entry.lastMs = nowMs;
    const slow = this.latencyFactor(member) >= SLOW_LATENCY_FACTOR;
    if (entry.clients.size < AVOIDS_TO_SET_ASIDE && !slow) return;
    if (member.setAsideUntilMs <= nowMs) {
      this.counters.membersAvoided++;
      this.log.warn(
        { group: this.name, member: member.id, address: member.address, avoiders: entry.clients.size, slow },
        `member ${member.id} (${member.address}) set aside for ${this.config.holdMs} ms: ${entry.clients.size} client(s) gave it up${slow ? ' and its latency is far above the others\'' : ''}`,
      );
    }
    member.setAsideUntilMs = nowMs + this.config.holdMs;
    this.setAsideUntilLatestMs = Math.max(this.setAsideUntilLatestMs, member.setAsideUntilMs);
  }

  /** The member's mean latency over the median of the other members' (0 when unknown). */
  private latencyFactor(member: Member): number {
    const own = member.latest?.latencyMs ?? 0;
    const others = [...this.members.values()].filter((m) => m !== member && m.latest !== null && m.latest.latencyMs > 0).map((m) => m.latest!.latencyMs).sort((a, b) => a - b);
    if (!(own > 0) || others.length === 0) return 0;
    return own / others[Math.floor(others.length / 2)]!;
  }

  /**
   * An xDS client's calls/s to `member` over its last LRS interval: its
   * load there, as a replica's report gives other clients' (dampened the
   * same way). xDS clients understand weighted bindings (locality weights).
   */
  applyXdsLoad(member: Member, clientId: string, callsPerS: number, nowMs: number): void {
    const share = member.latest === null ? 1 : perCallShare(member.latest, this.config.metric);
    const load = callsPerS * share;
    const previous = member.clients.get(clientId);
    if (previous === undefined) this.setClient(member, clientId, { load, sets: true, lrsAtMs: nowMs });
    else {
      previous.load = dampen(previous.load, load, this.dampening);
      previous.sets = true;
      previous.lrsAtMs = nowMs;
    }
  }

  /** Whether the last plan has settled (every member reported enough since). */
  settled(): boolean {
    for (const m of this.members.values()) if (m.settleLeft > 0) return false;
    return true;
  }

  /**
   * Runs the strategy's planner on the current loads and applies the plan to
   * the group's own view (dampened loads shifted, moved clients held, their
   * new bindings in the ledger). Returns the moves; the bindings they make
   * are in {@link lastPlan}, for the caller to turn into advisories.
   */
  plan(nowMs: number): Move[] {
    if (this.config.granularity !== 'on-demand' || !this.strategy.adaptive || !this.settled()) return [];
    this.ledger.expireHolds(nowMs);
    // A member clients are giving up is neither a source nor a target: its calls/s understate its load.
    // One pass over the members (10,000 objects spread over the heap: each pass cost about a millisecond).
    const members: Member[] = [];
    let calls = 0;
    const holdMs = this.config.holdMs;
    for (const m of this.members.values()) {
      if (!m.reported || m.state === 'DRAINING' || m.state === 'SUSPECT' || m.setAsideUntilMs > nowMs) continue;
      members.push(m);
      calls += ((m.latest?.callsPerS ?? 0) * (m.latest?.intervalMs ?? 0)) / 1000;
    }
    if (members.length < 2) return [];
    // Too little evidence: a few calls per interval are noise, not load.
    if (calls / members.length < this.config.planMinCalls) return [];
    const loads = new Float64Array(members.length);
    members.forEach((m, n) => {
      m.recentlyShed = nowMs - m.lastShedAtMs < holdMs;
      loads[n] = m.load;
    });
    // One entry per client per member (120,000 in a group of 100,000 clients): built only for the members and
    // clients the planner looks at (minimum_dispersion looks at a few members per step), or all when a strategy reads `clients`.
    const anyHeld = this.ledger.holdCount > 0;
    const entry = (clientId: string, member: Member, c: MemberClient): ClientLoad => ({
      clientId,
      memberId: member.id,
      load: c.load,
      held: anyHeld && this.ledger.isHeld(clientId, nowMs),
      divisible: c.sets,
    });
    const clientsOf = (index: number): ClientLoad[] => {
      const m = members[index]!;
      const out: ClientLoad[] = [];
      m.clients.forEach((c, clientId) => out.push(entry(clientId, m, c)));
      return out;
    };
    const entriesOf = (clientId: string): ClientLoad[] => (this.membersOfClient(clientId) ?? []).map((m) => entry(clientId, m, m.clients.get(clientId)!));
    let all: ClientLoad[] | null = null;
    const input: PlanInput = {
      members,
      get clients(): readonly ClientLoad[] {
        return (all ??= members.flatMap((_, index) => clientsOf(index)));
      },
      clientsOf,
      entriesOf,
      nowMs,
      random: this.random,
      maxBindingSize: this.config.maxBindingSize,
      minShare: this.config.minShare,
    };
    const before = dispersion(loads);
    const moves = this.strategy.plan(input);
    if (moves.length === 0) return moves;
    const bindings = this.applyPlan(moves, nowMs);
    this.lastPlan = { atMs: nowMs, moves, bindings, dispersionBefore: before, dispersionAfter: dispersion(members.map((m) => m.load)) };
    this.counters.movesPlanned += moves.length;
    this.log.debug({ group: this.name, moves }, `plan: ${moves.length} move(s)`);
    return moves;
  }

  /**
   * Each of these clients' load on each member, as the group sees it now
   * (by member, in the members' order), from the client index: a pass over
   * every member's clients was a plan's largest cost after the planner in a
   * group of 10,000.
   */
  private portionsOf(clientIds: Iterable<string>): Map<string, Map<string, number>> {
    const all = new Map<string, Map<string, number>>();
    for (const id of clientIds) {
      if (all.has(id)) continue;
      const on = [...(this.membersOfClient(id) ?? [])].sort((a, b) => a.ordinal - b.ordinal);
      const portions = new Map<string, number>();
      for (const m of on) {
        const load = m.clients.get(id)!.load;
        if (load > 0) portions.set(m.id, load);
      }
      all.set(id, portions);
    }
    return all;
  }

  /** Applies a plan's moves to the group's view and the ledger; returns each moved client's new binding. */
  private applyPlan(moves: readonly Move[], nowMs: number): PlannedBinding[] {
    const touched = new Map<string, { before: Map<string, number>; after: Map<string, number>; sets: boolean; lrs: boolean }>();
    // The moves change no member's clients until every move is applied: each client's portions can be read for all at once.
    const portions = this.portionsOf(moves.filter((m) => this.members.has(m.from) && this.members.has(m.to)).map((m) => m.clientId));
    for (const move of moves) {
      const from = this.members.get(move.from);
      const to = this.members.get(move.to);
      if (from === undefined || to === undefined) continue;
      let t = touched.get(move.clientId);
      if (t === undefined) {
        const before = portions.get(move.clientId)!;
        const entries = [...before.keys()].map((id) => this.members.get(id)?.clients.get(move.clientId));
        const sets = entries.some((c) => c?.sets === true);
        const lrs = entries.some((c) => c?.lrsAtMs !== undefined);
        t = { before, after: new Map(before), sets, lrs };
        touched.set(move.clientId, t);
      }
      const left = (t.after.get(move.from) ?? 0) - move.load;
      // What is left of a client on a member after a whole move is rounding, not load.
      if (left > 1e-9 * move.load) t.after.set(move.from, left);
      else t.after.delete(move.from);
      t.after.set(move.to, (t.after.get(move.to) ?? 0) + move.load);
      const [fromLoad, toLoad] = shiftLoad(from.load, to.load, move.load);
      this.setLoad(from, fromLoad);
      this.setLoad(to, toLoad);
      for (const m of [from, to]) m.settleLeft = Math.max(m.settleLeft, this.config.settleReports);
      from.lastShedAtMs = nowMs;
      this.setState(from, 'SHEDDING');
    }
    const planned: PlannedBinding[] = [];
    for (const [clientId, t] of touched) {
      const legs = new Map<string, TransitLeg>();
      for (const id of new Set([...t.before.keys(), ...t.after.keys()])) {
        const load = t.after.get(id) ?? 0;
        const member = this.members.get(id);
        if (member === undefined) continue;
        if (load > 0) this.setClient(member, clientId, t.lrs ? { load, sets: t.sets, lrsAtMs: nowMs } : { load, sets: t.sets });
        else this.deleteClient(member, clientId);
        if (load !== (t.before.get(id) ?? 0)) legs.set(id, { load, reportsListing: 0, left: false });
      }
      this.ledger.hold(clientId, nowMs + this.config.holdMs);
      // An xDS client's calls are in its members' own counts (as other calls), never listed: a transit
      // would count them twice. Its new binding is pushed at once; the settle reports cover the rest.
      if (!t.lrs) this.ledger.startTransit(clientId, { legs, untilMs: nowMs + this.config.holdMs });
      const members = toPermille([...t.after].map(([memberId, load]) => ({ memberId, address: this.members.get(memberId)!.address, load })));
      if (members.length === 0) continue;
      this.ledger.planned(clientId, members.map((m): BindingShare => ({ memberId: m.memberId, share: m.permille / 1000 })), nowMs);
      planned.push({ clientId, sets: t.sets, members, sources: [...t.before.keys()] });
    }
    return planned;
  }

  // ---- per-request (direct) bindings -------------------------------------------------------

  /** Folds a report into the member's capacity estimate (calls/s per unit of the group's metric). */
  private updateCapacity(member: Member, report: LoadReport__Output): void {
    let estimate: number | null;
    if (this.config.metric === 'calls_per_s') estimate = 1; // the metric says every call costs the same everywhere
    else {
      const load = loadOf(report, this.config.metric);
      estimate = report.callsPerS > 0 && load > 0 ? report.callsPerS / load : null;
    }
    if (estimate === null || !Number.isFinite(estimate)) return;
    const previous = this.capacity.get(member.id);
    this.capacity.set(member.id, previous === undefined ? estimate : dampen(previous, estimate, this.dampening));
  }

  /**
   * Recomputes the per-request (direct) bindings: the members taking clients,
   * in shards of at most 16 (by address, round robin), each shard a binding
   * of its members weighted by capacity (calls/s per unit of load: grpc's
   * weighted_round_robin uses qps/utilization alike), unknown capacities at
   * the median, all within 1/4..4x the median. Weights move only when one
   * changes by {@link OFFER_WEIGHT_STEP_PERMILLE} or membership changes.
   * Returns whether the bindings changed. Outside per-request, there are none.
   */
  refreshOffers(): boolean {
    this.offersStale = false;
    if (this.config.granularity !== 'per-request') {
      const changed = this.offers !== null;
      this.offers = null;
      if (changed) this.offersVersion++;
      return changed;
    }
    for (const id of this.capacity.keys()) if (!this.members.has(id)) this.capacity.delete(id);
    const members = [...this.members.values()].filter((m) => m.state !== 'DRAINING' && m.state !== 'SUSPECT');
    members.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
    const capacities = clampedCapacities(members.map((m) => this.capacity.get(m.id)));
    const withCapacity = members.map((m, i) => ({ member: m, address: m.address, capacity: capacities[i]! }));
    const next = new Map<string, string>();
    for (const shard of shards(withCapacity)) {
      const text = shardBinding(shard);
      if (text === null) continue;
      for (const m of shard) next.set(m.member.id, text);
    }
    if (this.offers !== null && !offersDiffer(this.offers, next)) return false;
    this.offers = next;
    this.offersVersion++;
    return true;
  }

  /**
   * The binding member `member` offers clients that understand weighted
   * bindings: its shard's per-request binding, or itself alone for a while
   * after a switch away from per-request; null for none.
   */
  offerFor(member: Member, nowMs: number): string | null {
    if (this.offers !== null) return this.offers.get(member.id) ?? null;
    if (nowMs < this.selfOfferUntilMs && member.state !== 'DRAINING') return formatBinding([{ address: member.address, permille: 1000 }]);
    return null;
  }

  /**
   * How long a replica may make the offer from now, ms: less than what is
   * left of its voucher (valid advisoryExpireMs + VOUCH_MARGIN_MS, reused
   * by the voucher's cache during its first half) by a second; after a
   * switch away from per-request, at most until the self offers end.
   */
  offersExpireMs(nowMs: number): number {
    const voucherLeftMs = Math.max(1, Math.floor((this.config.advisoryExpireMs + VOUCH_MARGIN_MS) / 2) - 1000);
    if (this.offers !== null) return voucherLeftMs;
    return Math.max(1, Math.min(voucherLeftMs, Math.round(this.selfOfferUntilMs - nowMs)));
  }

  /**
   * A per-request (direct) binding for a client that understands weighted
   * bindings, calling `path`: one shard's binding (a shard drawn by its
   * capacity), or null when no shard has every member serving `path` (the
   * call is then proxied). Recorded in the ledger like a bind.
   */
  directBinding(path: string, clientId: string | null, nowMs: number, caller?: string): { text: string; members: BindingMember[] } | null {
    // A member joined or left since: the binding handed out now must name the members there are.
    if (this.offers === null || this.offersStale) this.refreshOffers();
    if (this.offers === null || this.offers.size === 0) return null;
    const serving = new Set(this.eligible(path).map((m) => m.id));
    const texts = new Map<string, string[]>();
    for (const [id, text] of this.offers) {
      const list = texts.get(text) ?? [];
      list.push(id);
      texts.set(text, list);
    }
    const candidates = [...texts].filter(([, ids]) => ids.every((id) => serving.has(id)));
    if (candidates.length === 0) return null;
    let pick = candidates[0]!;
    if (candidates.length > 1) {
      const weight = ([, ids]: [string, string[]]) => ids.reduce((sum, id) => sum + (this.capacity.get(id) ?? 1), 0);
      let r = this.random() * candidates.reduce((sum, c) => sum + weight(c), 0);
      for (const c of candidates) {
        r -= weight(c);
        if (r < 0) {
          pick = c;
          break;
        }
      }
    }
    const [text, ids] = pick;
    const members = bindingMembers(text);
    // One frozen share list per offered binding, shared by every client bound to it (a ledger of 100,000 clients holds 100,000 references, not 1.6 million entries).
    let shares = this.offerShares.get(text);
    if (shares === undefined) {
      shares = Object.freeze(ids.map((id) => Object.freeze({ memberId: id, share: (members.find((m) => m.address === this.members.get(id)!.address)?.permille ?? 0) / 1000 })));
      if (this.offerShares.size >= MAX_BINDING_MEMBERS * 64) this.offerShares.clear();
      this.offerShares.set(text, shares);
    }
    const outcome = this.ledger.bound(clientId, shares, nowMs, caller, 'bind');
    if (!outcome.credited) this.lastCreditCapped = true;
    if (clientId !== null) {
      this.counters.binds++;
      if (outcome.rebind) this.counters.rebinds++;
    }
    return { text, members };
  }
}

/** Σ(L−μ)² of some loads. */
export function dispersion(loads: ArrayLike<number>): number {
  const n = loads.length;
  if (n === 0) return 0;
  let total = 0;
  for (let k = 0; k < n; k++) total += loads[k]!;
  const mean = total / n;
  let sum = 0;
  for (let k = 0; k < n; k++) sum += (loads[k]! - mean) ** 2;
  return sum;
}

/**
 * The binding ledger of one replica group: who is bound where, since when,
 * which binds are still on their way (pending until the member's next
 * report), which clients a plan moved and has not seen arrive (transits),
 * which clients are held where they are, and how much pending-bind credit
 * each caller has taken in the current report interval.
 *
 * It is the one place for these client-keyed tables; the group keeps
 * membership (members, addresses, eligibility) and asks the ledger about
 * clients. Every table that a remote party can make grow has a bound and an
 * eviction rule, said where it is declared. Like the group, the ledger is
 * synchronous and takes the time as an argument (virtual time in the
 * simulator).
 *
 * A binding names its members with shares that add up to 1: one member
 * with share 1 (a bind, a client that does not understand weighted
 * bindings), or a weighted set (a plan's share moves, a per-request direct
 * binding).
 */

import { ClientBindings } from './client-bindings';

/** Callers whose pending-bind credit the ledger tracks per report interval; a caller beyond them gets no credit. */
export const MAX_CREDIT_CALLERS = 10_000;

/** Clients whose last binding the ledger remembers (to tell re-binds from first binds); the least recently bound is forgotten first. */
export const MAX_REMEMBERED_BINDINGS = 100_000;

/**
 * Clients bound within the last report interval the ledger remembers (so
 * racing first calls get the same member). Beyond it the oldest is forgotten
 * first: at 20,000 binds/s the newest binds keep their protection for half a
 * second, far longer than first calls race.
 */
export const MAX_RECENT_BINDS = 10_000;

/** How a binding was made: a bind (forward), a plan's move, or a bind that avoided members the client named. */
export type BindingVia = 'bind' | 'plan' | 'avoid';

/** One member of a binding and the part of the client's calls it gets (0 < share <= 1). */
export interface BindingShare {
  readonly memberId: string;
  readonly share: number;
}

/** Where a client is bound, since when, and how. */
export interface Binding {
  /** The members, shares adding up to 1, by member id. */
  readonly members: readonly BindingShare[];
  /** When the binding was made (ms). */
  readonly sinceMs: number;
  readonly via: BindingVia;
}

/** Binds and proxied calls sent to a member since its last report: they add to its projected load. */
export interface PendingCounts {
  binds: number;
  calls: number;
}

/**
 * Where the ledger mirrors a tracked member's pending counts: arrays by slot
 * (the group's MemberStore, whose choice reads them instead of the records).
 * The arrays are read at each write: the store may replace them as it grows.
 */
export interface PendingMirror {
  readonly pendingBinds: Float64Array;
  readonly pendingCalls: Float64Array;
}

/** A member's pending counts and where they are mirrored (slot -1: nowhere). */
interface PendingRecord {
  /** The live counts (members read them as their pendingBinds/pendingCalls). */
  readonly counts: PendingCounts;
  mirror: PendingMirror | null;
  slot: number;
}

/** A client's planned load on one member while its plan settles. */
export interface TransitLeg {
  /** The load the plan put there (0: the client is to leave that member). */
  readonly load: number;
  /** Reports of that member listing the client since the plan (a leg with load > 0). */
  reportsListing: number;
  /** A report of that member no longer listed the client (a leg with load 0). */
  left: boolean;
}

/**
 * A client a plan moved (all of it, or shares of it), until its calls have
 * settled where the plan put them: its planned load on each member the plan
 * changed, which those members' loads count instead of what they report.
 */
export interface Transit {
  readonly legs: ReadonlyMap<string, TransitLeg>;
  /** Give up tracking at this time (the client may have gone idle). */
  readonly untilMs: number;
}

/** What {@link BindingLedger.bound} recorded. */
export interface BindOutcome {
  /** The bind added to its member's pending binds (false: its caller had no credit left). */
  readonly credited: boolean;
  /** The client had been bound to other members before (a re-bind). */
  readonly rebind: boolean;
}

/** Times a ledger's bounds bit (totals since start). */
export interface LedgerCounters {
  /** Remembered bindings forgotten because {@link MAX_REMEMBERED_BINDINGS} were remembered. */
  bindingsEvicted: number;
  /** Recent binds forgotten while still fresh (less than a report interval old) because {@link MAX_RECENT_BINDS} were remembered: a racing call of that client may be bound elsewhere. */
  recentBindsEvicted: number;
  /** Binds that got no pending credit: their caller was over its share, or {@link MAX_CREDIT_CALLERS} callers had credit already. */
  creditRefused: number;
}

function sameMembers(a: readonly BindingShare[], b: readonly BindingShare[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i]!.memberId !== b[i]!.memberId || a[i]!.share !== b[i]!.share) return false;
  return true;
}

function names(members: readonly BindingShare[], memberId: string): boolean {
  for (const m of members) if (m.memberId === memberId) return true;
  return false;
}

// What bound() returns, shared (a bind allocates no outcome).
const CREDITED_FIRST: BindOutcome = Object.freeze({ credited: true, rebind: false });
const CREDITED_REBIND: BindOutcome = Object.freeze({ credited: true, rebind: true });
const UNCREDITED_FIRST: BindOutcome = Object.freeze({ credited: false, rebind: false });
const UNCREDITED_REBIND: BindOutcome = Object.freeze({ credited: false, rebind: true });

function settled(transit: Transit): boolean {
  for (const leg of transit.legs.values()) if (leg.load > 0 ? leg.reportsListing < 2 : !leg.left) return false;
  return true;
}

export class BindingLedger {
  /**
   * Pending-bind credit a caller (the remote address of a data-port
   * connection) may take per report interval. A bind adds to its member's
   * projected load until the member's next report (which either shows the
   * client or shows that it never came); without a bound per caller, one
   * party minting fresh client ids could push every member over a reject
   * threshold with binds it never uses. Binds over it are still made, just
   * not counted as pending.
   */
  maxPendingBindsPerCaller = Number.POSITIVE_INFINITY;
  readonly counters: LedgerCounters = { bindingsEvicted: 0, recentBindsEvicted: 0, creditRefused: 0 };

  /**
   * Each client's last binding, least recently bound first, and which of
   * them were bound recently: flat arrays, no Map churn per bind (see
   * ClientBindings). Remembered bindings are bounded by
   * {@link MAX_REMEMBERED_BINDINGS}: a new client beyond it evicts the least
   * recently bound one (counted in `bindingsEvicted`); that client's next
   * bind then counts as a first bind, not a re-bind. Recent binds (so that a
   * client whose first calls race each other gets the same member for all of
   * them within one report interval) are bounded by {@link MAX_RECENT_BINDS}:
   * each bind drops the recent binds older than a report interval, oldest
   * first, and when the table is still full (a flood of new clients) the
   * oldest fresh one is forgotten (counted in `recentBindsEvicted`), so the
   * newest binds keep their protection. Recent binds naming a member that
   * left are dropped with it; a plan's binding is not recent.
   */
  private readonly clients = new ClientBindings(MAX_REMEMBERED_BINDINGS, MAX_RECENT_BINDS);
  /**
   * Remembered bindings by number of members (index n: bindings of n
   * members), kept as bindings change so that reading it (each /metrics
   * scrape, each dashboard snapshot) costs O(binding sizes), not a walk of
   * up to {@link MAX_REMEMBERED_BINDINGS} entries.
   */
  private readonly sizeCounts: number[] = [0];
  /**
   * Clients held where they are until the given time (ms): a plan moves a
   * client at most once per hold time. Made only by plans (at most the
   * strategy's moves per plan), dropped by {@link expireHolds} once over.
   */
  private readonly holds = new Map<string, number>();
  /**
   * Clients moved by a plan whose calls may still be split between two
   * members. Made only by plans; dropped when settled, when their time runs
   * out (checked on every report), or when either member leaves.
   */
  private readonly transits = new Map<string, Transit>();
  /**
   * The members of a bind to one member ([{ memberId, share: 1 }], frozen),
   * one per member and shared by all its clients' bindings: a bind allocates
   * no array and share of its own (two objects per remembered client that
   * would outlive the young generation). Bounded like `pending`: made on a
   * bind to the member, dropped by {@link forgetMember}.
   */
  private readonly soleShares = new Map<string, readonly BindingShare[]>();
  /** Pending binds and calls per member, from {@link trackMember} until {@link forgetMember}. */
  private readonly pending = new Map<string, PendingRecord>();
  /**
   * Pending-bind credit taken per caller in the current window (one report
   * interval from the first bind after the last window ended). Bounded by
   * {@link MAX_CREDIT_CALLERS}: a caller beyond them gets no credit until the
   * window ends; the whole table is cleared when it does.
   */
  private readonly creditByCaller = new Map<string, number>();
  private creditWindowStartMs = Number.NEGATIVE_INFINITY;

  /** @param reportIntervalMs the group's report interval (ms), read at each use: it is the length of a recent bind and of a credit window. */
  constructor(private readonly reportIntervalMs: () => number) {}

  /** Clients whose last binding is remembered. */
  get bindingCount(): number {
    return this.clients.size;
  }

  /** Clients bound recently (see {@link recentBinding}), counting stale entries not yet dropped. */
  get recentCount(): number {
    return this.clients.recentSize;
  }

  /** Members with a pending record (tracked and not forgotten, or bound to since). */
  get memberCount(): number {
    return this.pending.size;
  }

  /** Callers with pending-bind credit in the current window. */
  get creditCallerCount(): number {
    return this.creditByCaller.size;
  }

  /** The client's last binding, if remembered. */
  bindingOf(clientId: string): Binding | undefined {
    const slot = this.clients.find(clientId);
    return slot < 0 ? undefined : this.bindingAt(slot);
  }

  /** The binding kept at a slot, as an object (made on each read: the ledger keeps no object per client). */
  private bindingAt(slot: number): Binding {
    const c = this.clients;
    return { members: c.membersOf(slot), sinceMs: c.sinceOf(slot), via: c.viaOf(slot) };
  }

  /**
   * The client's binding if it was made less than one report interval ago
   * and none of its members has left since: a racing first call gets it again.
   */
  recentBinding(clientId: string, nowMs: number): Binding | undefined {
    const slot = this.clients.find(clientId);
    if (slot < 0 || !this.clients.isRecent(slot) || nowMs - this.clients.sinceOf(slot) >= this.reportIntervalMs()) return undefined;
    return this.bindingAt(slot);
  }

  /**
   * Records a bind to `memberId` at `nowMs`. With a `caller`, the bind adds
   * to the member's pending binds only while the caller has credit left in
   * this report interval; without one it always does. With a `clientId`, the
   * binding is remembered (and recent); without one (a client that did not
   * name itself) it is only pending.
   */
  bound(clientId: string | null, memberId: string | readonly BindingShare[], nowMs: number, caller?: string, via: BindingVia = 'bind'): BindOutcome {
    const members: readonly BindingShare[] = typeof memberId === 'string' ? this.soleShare(memberId) : memberId;
    const credited = this.takeCredit(caller, nowMs);
    // A bind to a set adds to each member its share of a client.
    if (credited) for (const m of members) this.addPending(m.memberId, m.share, 0);
    else this.counters.creditRefused++;
    if (clientId === null) return credited ? CREDITED_FIRST : UNCREDITED_FIRST;
    this.forgetOldBinds(nowMs);
    const c = this.clients;
    let slot = c.find(clientId);
    let rebind = false;
    if (slot >= 0) {
      const previous = c.membersOf(slot);
      rebind = !sameMembers(previous, members);
      this.countSize(previous.length, -1);
      c.rebind(slot, members, nowMs, via); // now the most recently bound
    } else {
      if (c.size >= MAX_REMEMBERED_BINDINGS) this.evictOldestBinding();
      slot = c.add(clientId, members, nowMs, via);
    }
    c.markRecent(slot);
    this.countSize(members.length, 1);
    return credited ? (rebind ? CREDITED_REBIND : CREDITED_FIRST) : rebind ? UNCREDITED_REBIND : UNCREDITED_FIRST;
  }

  /**
   * Records the binding a plan gave a client (its members and shares after
   * the plan's moves): remembered like a bind's, but not pending (the
   * client's load is already in the group's view) and not recent.
   */
  planned(clientId: string, members: readonly BindingShare[], nowMs: number): void {
    const c = this.clients;
    const slot = c.find(clientId);
    if (slot >= 0) {
      this.countSize(c.membersOf(slot).length, -1);
      // What the client was bound to a moment ago is no longer where it goes.
      c.forgetRecent(slot);
      c.rebind(slot, members, nowMs, 'plan');
    } else {
      if (c.size >= MAX_REMEMBERED_BINDINGS) this.evictOldestBinding();
      c.add(clientId, members, nowMs, 'plan');
    }
    this.countSize(members.length, 1);
  }

  /** Every remembered binding, least recently made first (objects made as they are read). */
  *entries(): IterableIterator<[string, Binding]> {
    const c = this.clients;
    for (const slot of c.inOrder()) yield [c.idOf(slot), this.bindingAt(slot)];
  }

  /**
   * Remembered bindings by number of members: index n counts bindings of n
   * members (index 0 unused), up to the largest size remembered. A copy of
   * counts kept as bindings change: no walk of the ledger.
   */
  sizeHistogram(): number[] {
    let end = this.sizeCounts.length;
    while (end > 1 && this.sizeCounts[end - 1] === 0) end--;
    return this.sizeCounts.slice(0, end);
  }

  /** Adds `delta` to the count of remembered bindings of `size` members. */
  private countSize(size: number, delta: number): void {
    while (this.sizeCounts.length <= size) this.sizeCounts.push(0);
    this.sizeCounts[size]! += delta;
  }

  /** The shared members of a bind to `memberId` alone (see `soleShares`). */
  private soleShare(memberId: string): readonly BindingShare[] {
    let members = this.soleShares.get(memberId);
    if (members === undefined) {
      members = Object.freeze([Object.freeze({ memberId, share: 1 })]);
      this.soleShares.set(memberId, members);
    }
    return members;
  }

  /** Records a call proxied to `memberId`: it adds to the member's projected load until its next report. */
  calledThrough(memberId: string): void {
    this.addPending(memberId, 0, 1);
  }

  /** The one writer of pending counts that add up: the record, then its mirror (the same doubles, so a choice reading either sees the same loads). */
  private addPending(memberId: string, binds: number, calls: number): void {
    const record = this.record(memberId);
    const counts = record.counts;
    if (binds !== 0) counts.binds += binds;
    if (calls !== 0) counts.calls += calls;
    if (record.mirror !== null) {
      record.mirror.pendingBinds[record.slot] = counts.binds;
      record.mirror.pendingCalls[record.slot] = counts.calls;
    }
  }

  /**
   * The member's pending binds and calls: a live record, which the member
   * reads as its `pendingBinds`/`pendingCalls` (see {@link trackMember}).
   */
  pendingFor(memberId: string): Readonly<PendingCounts> {
    return this.record(memberId).counts;
  }

  private record(memberId: string): PendingRecord {
    let record = this.pending.get(memberId);
    if (record === undefined) {
      record = { counts: { binds: 0, calls: 0 }, mirror: null, slot: -1 };
      this.pending.set(memberId, record);
    }
    return record;
  }

  /**
   * Starts tracking a member that joined; returns its live pending record.
   * With a `mirror`, its counts are also kept in the mirror's arrays at
   * `slot` (written now, and at every change until {@link forgetMember}).
   */
  trackMember(memberId: string, mirror: PendingMirror | null = null, slot = -1): Readonly<PendingCounts> {
    const record = this.record(memberId);
    record.mirror = mirror !== null && slot >= 0 ? mirror : null;
    record.slot = record.mirror === null ? -1 : slot;
    if (record.mirror !== null) {
      record.mirror.pendingBinds[slot] = record.counts.binds;
      record.mirror.pendingCalls[slot] = record.counts.calls;
    }
    return record.counts;
  }

  /** The member reported: what was pending is now in its load (or never came). */
  reported(memberId: string): void {
    const record = this.pending.get(memberId);
    if (record === undefined) return;
    record.counts.binds = 0;
    record.counts.calls = 0;
    if (record.mirror !== null) {
      record.mirror.pendingBinds[record.slot] = 0;
      record.mirror.pendingCalls[record.slot] = 0;
    }
  }

  /**
   * A member left: its pending counts, the recent binds naming it (a racing
   * call must not be sent to it) and the transits from or to it are dropped.
   * Remembered bindings stay, so that binding its clients elsewhere counts as
   * a re-bind.
   */
  forgetMember(memberId: string): void {
    this.pending.delete(memberId);
    this.soleShares.delete(memberId);
    const c = this.clients;
    c.forEachRecent((slot) => {
      if (names(c.membersOf(slot), memberId)) c.forgetRecent(slot);
    });
    for (const [clientId, t] of this.transits) if (t.legs.has(memberId)) this.transits.delete(clientId);
  }

  /** Holds a client where it is until `untilMs`. */
  hold(clientId: string, untilMs: number): void {
    this.holds.set(clientId, untilMs);
  }

  /** Whether the client is held at `nowMs`. */
  isHeld(clientId: string, nowMs: number): boolean {
    const until = this.holds.get(clientId);
    return until !== undefined && until > nowMs;
  }

  /** Drops the holds that are over at `nowMs`. */
  expireHolds(nowMs: number): void {
    for (const [id, until] of this.holds) if (until <= nowMs) this.holds.delete(id);
  }

  /** Clients held (counting holds that are over but not yet expired). */
  get holdCount(): number {
    return this.holds.size;
  }

  /** Records a plan's moves of a client, tracked until they have settled (see {@link settleTransits}). */
  startTransit(clientId: string, transit: Transit): void {
    this.transits.set(clientId, transit);
  }

  /** The client's transit, if it is moving. */
  transitOf(clientId: string): Transit | undefined {
    return this.transits.get(clientId);
  }

  /** Clients in transit. */
  get transitCount(): number {
    return this.transits.size;
  }

  /**
   * Takes a report of `memberId` listing the clients `listed` into the
   * transits: a transit ends once every member its plan gave load has listed
   * the client in two reports and every member it was to leave has reported
   * without it, or at its `untilMs`. Returns the planned load of the
   * transits on this member (including those ending now), which the
   * member's raw load counts instead of what it reported for them.
   */
  settleTransits(memberId: string, listed: ReadonlySet<string>, nowMs: number): number {
    let planned = 0;
    for (const [clientId, transit] of this.transits) {
      const leg = transit.legs.get(memberId);
      if (leg !== undefined) {
        planned += leg.load;
        if (leg.load > 0 && listed.has(clientId)) leg.reportsListing++;
        if (leg.load === 0 && !listed.has(clientId)) leg.left = true;
      }
      if (transit.untilMs <= nowMs || settled(transit)) this.transits.delete(clientId);
    }
    return planned;
  }

  /** Whether a bind by `caller` may add to its member's pending binds (and takes the credit if so). */
  private takeCredit(caller: string | undefined, nowMs: number): boolean {
    if (caller === undefined) return true;
    if (nowMs - this.creditWindowStartMs >= this.reportIntervalMs()) {
      this.creditByCaller.clear();
      this.creditWindowStartMs = nowMs;
    }
    const taken = this.creditByCaller.get(caller) ?? 0;
    if (taken >= this.maxPendingBindsPerCaller) return false;
    if (taken === 0 && this.creditByCaller.size >= MAX_CREDIT_CALLERS) return false;
    this.creditByCaller.set(caller, taken + 1);
    return true;
  }

  /** Forgets the least recently bound client (counted). */
  private evictOldestBinding(): void {
    const c = this.clients;
    const slot = c.oldestSlot();
    if (slot >= 0) {
      this.countSize(c.membersOf(slot).length, -1);
      c.remove(slot);
    }
    this.counters.bindingsEvicted++;
  }

  /**
   * Before a bind is added: drops the recent binds older than a report
   * interval, oldest first (they answer nothing any more), then, while the
   * table is full of fresh ones, forgets the oldest (counted).
   */
  private forgetOldBinds(nowMs: number): void {
    const c = this.clients;
    const interval = this.reportIntervalMs();
    for (let slot = c.oldestRecent(); slot >= 0; slot = c.oldestRecent()) {
      const fresh = nowMs - c.sinceOf(slot) < interval;
      if (fresh && c.recentSize < MAX_RECENT_BINDS) break;
      c.forgetRecent(slot);
      if (fresh) this.counters.recentBindsEvicted++;
    }
  }
}

/**
 * One attached replica, as the balancer tracks it.
 */
import type { LoadReport__Output } from '../generated/rebind/v1/LoadReport';
import type { Method__Output } from '../generated/rebind/v1/Method';
import type { Advisory } from '../generated/rebind/v1/Advisory';
import type { PendingCounts } from './ledger';
import type { MemberLoad } from './strategies/types';

/**
 * NOMINAL: serving; SHEDDING: moving clients away after an advisory;
 * DRAINING: leaving; SUSPECT: its reports stopped (hung or cut off), given
 * no new client until it reports again or is removed.
 */
export type MemberState = 'ATTACHED' | 'NOMINAL' | 'SHEDDING' | 'DRAINING' | 'SUSPECT';

/** Where the balancer sends a member's advisories (its control stream). */
export interface AdvisorySink {
  /** Sends an advisory; false if the stream is gone. */
  sendAdvisory(advisory: Advisory): boolean;
  /** Ends the member's control stream with an error status. */
  close(code: number, details: string): void;
}

/** A client's dampened load on one member. */
export interface MemberClient {
  load: number;
  /** The client understands weighted bindings (its reports say so). */
  sets: boolean;
  /** The load comes from the client's own LRS reports (an xDS client), last at this time (ms): replicas' reports do not list it. */
  lrsAtMs?: number;
}

/**
 * A group's members' choice inputs side by side, by slot (Group keeps one
 * slot per member while it is in the group): dampened load, pending binds
 * and pending calls in three typed arrays. A choice runs for every bind and
 * proxied call over every eligible member: reading three contiguous arrays
 * instead of a thousand Member objects (and their pending records) spread
 * over the heap saves most of its cache misses. Mirrors, not owners: the group writes a
 * member's load to both (Group.setLoad), the ledger its pending counts
 * (BindingLedger.trackMember).
 */
export class MemberStore {
  loads: Float64Array = new Float64Array(16);
  pendingBinds: Float64Array = new Float64Array(16);
  pendingCalls: Float64Array = new Float64Array(16);
  /** Slots freed by members that left, reused first (the arrays never grow past the most members the group had at once). */
  private readonly free: number[] = [];
  private next = 0;

  /** A slot for a member joining the group, zeroed. */
  allocate(): number {
    const slot = this.free.pop() ?? this.next++;
    if (slot >= this.loads.length) {
      const grow = (a: Float64Array): Float64Array => {
        const b = new Float64Array(a.length * 2);
        b.set(a);
        return b;
      };
      this.loads = grow(this.loads);
      this.pendingBinds = grow(this.pendingBinds);
      this.pendingCalls = grow(this.pendingCalls);
    }
    this.loads[slot] = 0;
    this.pendingBinds[slot] = 0;
    this.pendingCalls[slot] = 0;
    return slot;
  }

  /** Gives back the slot of a member that left. */
  release(slot: number): void {
    this.free.push(slot);
  }

  /** Slots in use (for tests). */
  get size(): number {
    return this.next - this.free.length;
  }
}

export class Member implements MemberLoad {
  state: MemberState = 'ATTACHED';
  /**
   * Dampened load; 0 until the first report. Written only by the member's
   * group (Group.setLoad), which mirrors it in its {@link MemberStore}: a
   * plain field, not an accessor, as it is read on every report and plan.
   */
  load = 0;
  /** The group's store this member's load is mirrored in, and its slot there (set by Group.addMember, cleared when it leaves). */
  private store: MemberStore | null = null;
  private storeSlot = -1;
  /** The member's slot in `store` (-1 for none): Group.addMember / removeMember only. */
  placeIn(store: MemberStore | null, slot: number): void {
    this.store = store;
    this.storeSlot = store === null ? -1 : slot;
    if (store !== null) store.loads[slot] = this.load;
  }
  /** The member's slot in `store`, or -1 if it has none there. */
  slotIn(store: MemberStore): number {
    return this.store === store ? this.storeSlot : -1;
  }
  rawLoad = 0;
  reported = false;
  /**
   * Binds and proxied calls sent to this member since its last report. The
   * group's binding ledger owns and updates the record (Group.addMember
   * sets it); a member in no group has its own, at zero.
   */
  pending: Readonly<PendingCounts> = { binds: 0, calls: 0 };
  /** Binds since the last report (they add to the projected load). */
  get pendingBinds(): number {
    return this.pending.binds;
  }
  /** Proxied calls since the last report (they add to the projected load). */
  get pendingCalls(): number {
    return this.pending.calls;
  }
  proxiedInFlight = 0;
  reports = 0;
  lastSeq = 0;
  lastReportAtMs: number;
  /**
   * The latest report, as a snapshot the member owns (see
   * {@link keepReport}): the decoded report itself may be reused by the
   * decoder for the next replica's report.
   */
  latest: LoadReport__Output | null = null;
  /**
   * Movable clients seen in the latest report, with dampened loads. Only the
   * member's group changes it (Group keeps an index of clients to members
   * that must follow every change).
   */
  readonly clients = new Map<string, MemberClient>();
  /** Position of the member in its group's member order (set by Group.addMember; increases with each add). */
  ordinal = 0;
  /** Clients are giving this member up: no new client, no plan move, until then (ms). Set only by Group.noteAvoided, which keeps the latest of its members' (Group.choose skips its scan after that). */
  setAsideUntilMs = Number.NEGATIVE_INFINITY;
  /** Reports still to wait for before the group may plan again. */
  settleLeft = 0;
  /** When this member last sent clients away in a plan (ms), or -Infinity. */
  lastShedAtMs = Number.NEGATIVE_INFINITY;
  /** Kept up to date by the group before each plan (see Group.plan). */
  recentlyShed = false;
  readonly methodPaths: ReadonlySet<string>;

  constructor(
    readonly id: string,
    readonly group: string,
    readonly address: string,
    readonly methods: readonly Method__Output[],
    readonly sink: AdvisorySink,
    readonly attachedAtMs: number,
    /** The replica's own id (its affinity tokens name it); may be empty. */
    readonly replicaId = '',
    /** Lets this attachment's own replica replace it (sent in Attached, presented in a later Hello). */
    readonly resumeSecret = '',
    /** Marks the calls the balancer proxies to this member (rebind-proxied header); sent in Attached. */
    readonly proxySecret = '',
  ) {
    this.lastReportAtMs = attachedAtMs;
    this.methodPaths = new Set(methods.map((m) => m.path));
  }
}

/**
 * Copies `report` into `kept` (the member's previous snapshot, reused: its
 * object, its top-client list and their objects, and a client id string
 * equal to the one it had) or into a new snapshot; returns the snapshot.
 * A snapshot that lives for a report interval would otherwise be a new
 * object graph per report surviving young-generation collections (10,000
 * replicas: 10,000 a second); and the Control stream decodes reports into
 * one reused scratch (decodeReplicaMessageInto), which must not be kept.
 * The snapshot lists as many top clients as the report (bounded by
 * validateReport's maxTopClients).
 */
export function keepReport(kept: LoadReport__Output | null, report: LoadReport__Output): LoadReport__Output {
  if (kept === report) return kept;
  const k: LoadReport__Output = kept ?? {
    topClients: [],
    seq: 0,
    intervalMs: 0,
    callsPerS: 0,
    inFlight: 0,
    latencyMs: 0,
    eventLoopUtilization: 0,
    cpuCores: 0,
    custom: 0,
    hasCustom: false,
    otherCallsPerS: 0,
    forwards: 0,
    draining: false,
    clientCount: 0,
  };
  k.seq = report.seq;
  k.intervalMs = report.intervalMs;
  k.callsPerS = report.callsPerS;
  k.inFlight = report.inFlight;
  k.latencyMs = report.latencyMs;
  k.eventLoopUtilization = report.eventLoopUtilization;
  k.cpuCores = report.cpuCores;
  k.custom = report.custom;
  k.hasCustom = report.hasCustom;
  k.otherCallsPerS = report.otherCallsPerS;
  k.forwards = report.forwards;
  k.draining = report.draining;
  k.clientCount = report.clientCount;
  const from = report.topClients;
  // A caller's report may share the snapshot's list (a copy made by spreading the snapshot).
  const to = from === k.topClients ? (k.topClients = from.slice()) : k.topClients;
  const n = from.length;
  for (let i = 0; i < n; i++) {
    const c = from[i]!;
    const t = to[i];
    if (t === undefined) to.push({ clientId: c.clientId, callsPerS: c.callsPerS, sets: c.sets });
    else if (t === c) to[i] = { clientId: c.clientId, callsPerS: c.callsPerS, sets: c.sets };
    else {
      // An equal id keeps the old string: the new one (decoded a moment ago) dies young.
      if (t.clientId !== c.clientId) t.clientId = c.clientId;
      t.callsPerS = c.callsPerS;
      t.sets = c.sets;
    }
  }
  to.length = n;
  return k;
}

/**
 * The strategy interface. A strategy is pure: it sees a snapshot of a group
 * (members, dampened loads, per-client rates), its own parameters, the time
 * and a random source, and returns a decision. Timers, streams and sockets
 * live in the balancer (see ../analyzer.ts and ../group.ts).
 */

/** One member as a strategy sees it. */
export interface MemberLoad {
  /** Member id assigned by the balancer. */
  readonly id: string;
  /** host:port clients use. */
  readonly address: string;
  /** Dampened load in the group's metric (see ../load-table.ts). */
  readonly load: number;
  /** Load in the latest report, undampened. */
  readonly rawLoad: number;
  /** False until the member's first load report. */
  readonly reported: boolean;
  /** Clients bound to this member since its latest report (not yet in its load). */
  readonly pendingBinds: number;
  /** Calls proxied to this member since its latest report (not yet in its load). */
  readonly pendingCalls: number;
  /** Calls the balancer is proxying to this member right now. */
  readonly proxiedInFlight: number;
  /** The member sent clients away in a plan less than the group's hold time ago. */
  readonly recentlyShed: boolean;
}

/** A movable client of a member, with its dampened rate. */
export interface ClientLoad {
  readonly clientId: string;
  readonly memberId: string;
  /** The client's share of the member's load, in the group's metric. */
  readonly load: number;
  /** True while the client is held where it is (hysteresis). */
  readonly held: boolean;
  /**
   * The client understands weighted bindings: a planner may move part of
   * its load (a share) rather than all of it. A client spread over several
   * members appears once per member, each with its share's load.
   */
  readonly divisible?: boolean;
}

/** Input of {@link Strategy.choose}: pick a member for a new binding or a proxied call. */
export interface ChooseInput {
  /** Candidate members (all serve the call's method). Never empty. */
  readonly members: readonly MemberLoad[];
  /** Number of choices made in this group so far (for round-robin). */
  readonly sequence: number;
  /** Uniform random number in [0, 1). */
  readonly random: () => number;
  /** Load one new client is expected to add (group load / known clients). */
  readonly expectedClientLoad: number;
  /** Load one proxied call is expected to add until the next report. */
  readonly expectedCallLoad: number;
  /**
   * Live balancers binding clients to these members (an HA set; 1 without
   * one, the default). Each balancer knows only its own binds since a
   * member's last report, so the choice counts each of them this many times:
   * the others are assumed to be binding to it as much (see choose.ts).
   */
  readonly peerBalancers?: number;
  /**
   * The members' loads and pending counts side by side (the group's member
   * store), when the caller has them: what `members` says, read from three
   * contiguous arrays instead of an object per member. A strategy may read
   * either; one that hands a choice on with other loads than the members'
   * (effective loads) must drop it.
   */
  readonly compact?: CompactLoads;
}

/** See {@link ChooseInput.compact}. */
export interface CompactLoads {
  /** `slots[i]` is the index of `members[i]` in the arrays below (exactly one per member). */
  readonly slots: Int32Array;
  /** Dampened loads by slot (MemberLoad.load). */
  readonly loads: Float64Array;
  /** Pending binds by slot (MemberLoad.pendingBinds). */
  readonly pendingBinds: Float64Array;
  /** Pending calls by slot (MemberLoad.pendingCalls). */
  readonly pendingCalls: Float64Array;
}

/** Input of {@link Strategy.plan}: decide which clients to move. */
export interface PlanInput {
  /** Members that have reported at least once and are not draining. */
  readonly members: readonly MemberLoad[];
  /**
   * Movable clients of those members. A group of 100,000 clients has
   * 100,000 entries and more: when {@link clientsOf} and {@link entriesOf}
   * are given, this may be built only when read (a getter), and lists the
   * members' entries member by member, in the order of `members`, each
   * member's in the order {@link clientsOf} gives them.
   */
  readonly clients: readonly ClientLoad[];
  /**
   * The entries of `members[memberIndex]` (those `clients` has for it, in
   * the same order), built when asked: a planner that looks at a few
   * members per step reads only theirs. Given together with {@link entriesOf}.
   */
  readonly clientsOf?: (memberIndex: number) => readonly ClientLoad[];
  /** A client's entries (one per member it is on, in any order; entries on members not in `members` are ignored), built when asked. */
  readonly entriesOf?: (clientId: string) => readonly ClientLoad[];
  /** Current time, milliseconds (virtual in tests). */
  readonly nowMs: number;
  readonly random: () => number;
  /** k: members a divisible client's binding may have after the plan (default 1: whole moves only). */
  readonly maxBindingSize?: number;
  /** No share a plan creates or leaves carries less than this fraction of its client's load (default 0.1). */
  readonly minShare?: number;
}

/**
 * One step of a shedding plan: move `load` of `clientId`'s load from `from`
 * to `to` — all of what it has on `from`, or (a divisible client) a share of it.
 */
export interface Move {
  readonly clientId: string;
  readonly from: string;
  readonly to: string;
  /** Load the move is expected to shift. */
  readonly load: number;
}

/** A load-balancing strategy instance (its parameters already bound). */
export interface Strategy {
  readonly name: string;
  /** Whether the strategy uses load reports at all. */
  readonly adaptive: boolean;
  /**
   * Index into `input.members` of the member to bind to, or -1 when the
   * strategy refuses every member (least_loaded's reject threshold).
   */
  choose(input: ChooseInput): number;
  /**
   * The moves that rebalance the group, or [] for none. Non-adaptive
   * strategies never move clients.
   */
  plan(input: PlanInput): Move[];
}

/** Raw parameters as they come from configuration or the admin API. */
export type RawParams = Record<string, unknown>;

/** Describes one parameter for validation and documentation. */
export interface ParamSpec {
  readonly name: string;
  readonly description: string;
  readonly unit: string;
  /** Default value; null means "absent unless given" (see `dampening`). */
  readonly default: number | null;
  readonly min: number;
  readonly max: number;
  /** Whether `min` itself is allowed. */
  readonly minInclusive?: boolean;
  readonly integer?: boolean;
}

/** A strategy kind, registered by name in ./index.ts. */
export interface StrategyFactory {
  readonly name: string;
  readonly description: string;
  readonly adaptive: boolean;
  readonly params: readonly ParamSpec[];
  create(params: Readonly<Record<string, number>>): Strategy;
}

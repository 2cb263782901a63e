/**
 * The client side of rebind: a grpc-js load-balancing policy named "rebind"
 * that follows forwards transparently.
 *
 * The channel targets the balancer. Until bound, the policy sends calls to
 * the balancer. When a call ends with a forward (status ABORTED with a
 * `rebind-forward` trailer and retry pushback 0), the policy binds the
 * channel to the named replica; gRPC's own retry (the service config that
 * clientOptions() installs retries ABORTED) then re-sends the call, and its
 * pick finds the new binding. Later calls go straight to the replica until
 * another forward moves them. If the bound replica becomes unreachable, the
 * policy drops the binding and calls go back to the balancer, which binds
 * the client again.
 *
 * Every forward a call follows is recorded against that call (grpc-js hands
 * the picker one `extraPickInfo` object per call, shared by its attempts).
 * After `maxForwards` forwards the next attempt is dropped with UNAVAILABLE
 * and a message naming the hops, so forward loops end.
 *
 * A binding may be a weighted set of replicas (`rebind-binding`, sent only to
 * clients that advertise `rebind-sets/1`): the policy then keeps one child
 * pick_first per member and picks per call by two weighted random draws,
 * keeping the member with the lower (own calls in flight + 1) / share, so a
 * member that slows down stops getting new calls within a few calls. A set
 * arrives on a forward or piggy-backed on an OK response of a member of the
 * current binding; from a replica it is taken only with the balancer's
 * voucher for the exact binding string. A one-member binding whose member
 * stops answering (too many calls in flight, or none completing for a while)
 * is given up: the channel goes back to the balancer asking it to avoid that
 * member.
 *
 * This uses grpc-js's experimental load-balancing API; the package pins
 * @grpc/grpc-js ~1.14 for that reason.
 */
import { connectivityState as ConnectivityState, experimental, Metadata, status as Status, type ChannelOptions } from '@grpc/grpc-js';
import { isIP } from 'node:net';
import { performance } from 'node:perf_hooks';
import { formatHostPort, parseHostPort } from '../common/address';
import { MAX_BALANCERS } from '../common/balancers';
import { pickOfTwo, smoothNext } from '../common/smooth-wrr';
export { pickOfTwo };
import {
  AFFINITY_HEADER,
  AVOID_HEADER,
  MAX_AVOID,
  BALANCER_KEY_TRAILER,
  BALANCER_KEYS_TRAILER,
  BINDING_TRAILER,
  FORWARD_REASON_TRAILER,
  FORWARD_STATUS,
  FORWARD_TO_BALANCER,
  FORWARD_TRAILER,
  KEY_CHAIN_TRAILER,
  VOUCH_TRAILER,
  identifyCaller,
  parseAffinityToken,
  parseBinding,
  type BindingMember,
} from '../common/wire';
import { MAX_PINNED_KEYS, PinnedKeys, UNKNOWN_KEY, voucherGroup } from './vouch-check';

type Endpoint = experimental.Endpoint;
type Picker = experimental.Picker;
type PickArgs = experimental.PickArgs;
type PickResult = experimental.PickResult;
type ChannelControlHelper = experimental.ChannelControlHelper;
type StatusOr<T> = { ok: true; value: T } | { ok: false; error: { code: Status; details: string; metadata: Metadata } };

export const POLICY_NAME = 'rebind';
/** How long a channel asks the balancer to avoid a replica that failed it, ms. */
export const AVOID_MS = 10_000;
/**
 * A bound replica that is not connected within this long is given up, ms.
 * A hung process still completes TCP handshakes in its kernel, so without
 * this a channel would wait for grpc-js's 20 s connect timeout.
 */
export const DEFAULT_CONNECT_TIMEOUT_MS = 1000;
export const DEFAULT_MAX_FORWARDS = 4;
export const MAX_MAX_FORWARDS = 8;
/**
 * The stall bound of a one-member binding is adaptive: a call that finds
 * this channel's calls in flight on the member at or above
 * max(stallInFlightFloor, stallFactor x baseline) gives the binding up,
 * where the baseline is the channel's usual calls in flight (see
 * {@link InFlightBaseline}). `stallInFlight`, when set, caps that bound.
 *
 * Floor 16 calls: a light channel (1-2 calls in flight) on a member that
 * hangs or becomes many times slower reaches it within 16 calls, 320 ms at
 * 50 calls/s; lower floors give up on harmless fan-outs (a handler sending
 * 10 calls at once from a channel that usually has 1 in flight).
 */
export const DEFAULT_STALL_IN_FLIGHT_FLOOR = 16;
/**
 * Factor over the baseline, see {@link DEFAULT_STALL_IN_FLIGHT_FLOOR}: 4.
 * Above 2 because a burst of calls started at once from a cold channel sees,
 * at its k-th call, k in flight against a baseline of about k/2; a channel
 * that normally multiplexes 300 calls keeps its binding up to 1200.
 */
export const DEFAULT_STALL_FACTOR = 4;
/**
 * Time constant of the in-flight baseline, ms: 5000. Several seconds, so
 * that a pile-up of a few hundred ms on a hung member hardly moves it (at
 * 50 calls/s the baseline weighs some 250 recent call starts), while a
 * channel whose concurrency really changed is followed within seconds.
 */
export const STALL_BASELINE_TAU_MS = 5000;

/**
 * A one-member binding whose calls are in flight with none completing for
 * this long is given up, ms; 0 (the default) turns this off. Off by default
 * because the policy cannot tell a long stream (a subscription open for
 * minutes) from a hung call: a channel whose only call is a long stream
 * would give up its binding every few seconds. A stopped replica is caught
 * by keepalive anyway; a slow one by the in-flight bound (DEFAULT_STALL_FACTOR).
 */
export const DEFAULT_STALL_TIMEOUT_MS = 0;

/** The policy's configuration, from the service config's loadBalancingConfig. */
export class RebindLbConfig implements experimental.TypedLoadBalancingConfig {
  constructor(
    readonly maxForwards: number,
    /** Affinity token: every call of the channel is pinned to that replica. */
    readonly affinity: string | null = null,
    /** A bound replica not connected within this long is given up for another, ms. */
    readonly connectTimeoutMs = DEFAULT_CONNECT_TIMEOUT_MS,
    /** Absolute cap on the stall bound (calls); null: the adaptive bound alone. */
    readonly stallInFlight: number | null = null,
    /** A one-member binding with calls in flight and none completing for this long is given up, ms. */
    readonly stallTimeoutMs = DEFAULT_STALL_TIMEOUT_MS,
    /** The adaptive stall bound is never below this many calls in flight. */
    readonly stallInFlightFloor = DEFAULT_STALL_IN_FLIGHT_FLOOR,
    /** The adaptive stall bound is this many times the channel's baseline in flight. */
    readonly stallFactor = DEFAULT_STALL_FACTOR,
  ) {}
  getLoadBalancerName(): string {
    return POLICY_NAME;
  }
  toJsonObject(): object {
    return {
      [POLICY_NAME]: {
        maxForwards: this.maxForwards,
        connectTimeoutMs: this.connectTimeoutMs,
        ...(this.stallInFlight !== null ? { stallInFlight: this.stallInFlight } : {}),
        stallTimeoutMs: this.stallTimeoutMs,
        stallInFlightFloor: this.stallInFlightFloor,
        stallFactor: this.stallFactor,
        ...(this.affinity !== null ? { affinity: this.affinity } : {}) },
    };
  }
  static createFromJson(obj: unknown): RebindLbConfig {
    const raw = (obj ?? {}) as Record<string, unknown>;
    const maxForwards = raw['maxForwards'] ?? DEFAULT_MAX_FORWARDS;
    if (typeof maxForwards !== 'number' || !Number.isInteger(maxForwards) || maxForwards < 1 || maxForwards > MAX_MAX_FORWARDS) {
      throw new Error(`rebind config maxForwards is ${JSON.stringify(maxForwards)}; it must be an integer 1..${MAX_MAX_FORWARDS}`);
    }
    const affinity = raw['affinity'] ?? null;
    if (affinity !== null && (typeof affinity !== 'string' || typeof parseAffinityToken(affinity) === 'string')) {
      throw new Error(`rebind config affinity: ${typeof affinity === 'string' ? parseAffinityToken(affinity) : 'must be a string'}`);
    }
    const connectTimeoutMs = raw['connectTimeoutMs'] ?? DEFAULT_CONNECT_TIMEOUT_MS;
    if (typeof connectTimeoutMs !== 'number' || !Number.isInteger(connectTimeoutMs) || connectTimeoutMs < 10 || connectTimeoutMs > 600_000) {
      throw new Error(`rebind config connectTimeoutMs is ${JSON.stringify(connectTimeoutMs)}; it must be an integer 10..600000`);
    }
    const stallInFlight = raw['stallInFlight'] ?? null;
    if (stallInFlight !== null && (typeof stallInFlight !== 'number' || !Number.isInteger(stallInFlight) || stallInFlight < 1 || stallInFlight > 100_000)) {
      throw new Error(`rebind config stallInFlight is ${JSON.stringify(stallInFlight)}; it must be an integer 1..100000 (or absent: no cap)`);
    }
    const stallInFlightFloor = raw['stallInFlightFloor'] ?? DEFAULT_STALL_IN_FLIGHT_FLOOR;
    if (typeof stallInFlightFloor !== 'number' || !Number.isInteger(stallInFlightFloor) || stallInFlightFloor < 1 || stallInFlightFloor > 100_000) {
      throw new Error(`rebind config stallInFlightFloor is ${JSON.stringify(stallInFlightFloor)}; it must be an integer 1..100000`);
    }
    const stallFactor = raw['stallFactor'] ?? DEFAULT_STALL_FACTOR;
    if (typeof stallFactor !== 'number' || !Number.isFinite(stallFactor) || stallFactor < 2 || stallFactor > 1000) {
      throw new Error(`rebind config stallFactor is ${JSON.stringify(stallFactor)}; it must be a number 2..1000`);
    }
    const stallTimeoutMs = raw['stallTimeoutMs'] ?? DEFAULT_STALL_TIMEOUT_MS;
    if (typeof stallTimeoutMs !== 'number' || !Number.isInteger(stallTimeoutMs) || (stallTimeoutMs !== 0 && (stallTimeoutMs < 10 || stallTimeoutMs > 600_000))) {
      throw new Error(`rebind config stallTimeoutMs is ${JSON.stringify(stallTimeoutMs)}; it must be 0 (off) or an integer 10..600000`);
    }
    return new RebindLbConfig(maxForwards, affinity as string | null, connectTimeoutMs, stallInFlight as number | null, stallTimeoutMs, stallInFlightFloor, stallFactor);
  }
}

/** What the policy remembers about one call that was forwarded. */
interface CallRecord {
  hops: string[];
  failure: { code: Status; details: string } | null;
}

/** Events the policy reports (used by tests and metrics). */
export interface RebindClientEvents {
  /** A channel's binding moved; clientId is the channel's rebind client id. */
  forwarded?(from: string, to: string, reason: string, clientId: string | null): void;
  unbound?(from: string, reason: string, clientId: string | null): void;
  /**
   * An attempt of a call started on a connection to replica `to` (a member
   * of the channel's binding); raised per attempt, only where a listener
   * has this method. For measurements (which replica got calls when).
   */
  callSent?(to: string, clientId: string | null): void;
  /** A forward to `to` was not followed (no valid voucher); the call went back to the balancer. */
  refused?(from: string, to: string, why: string, clientId: string | null): void;
}

/** Process-wide listeners for client events. */
export const clientEvents = new Set<RebindClientEvents>();

function emit<K extends keyof RebindClientEvents>(name: K, ...args: Parameters<NonNullable<RebindClientEvents[K]>>): void {
  for (const listener of clientEvents) (listener[name] as ((...a: typeof args) => void) | undefined)?.(...args);
}

let pickFirstConfig: experimental.TypedLoadBalancingConfig | null = null;
function pickFirst(): experimental.TypedLoadBalancingConfig {
  pickFirstConfig ??= experimental.parseLoadBalancingConfig({ pick_first: {} });
  return pickFirstConfig;
}

/** 32-bit FNV-1a of a string: a cheap, well-spread rank. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return hash;
}

/**
 * The balancer's addresses in this channel's own order: ranked by a hash of
 * a per-channel random seed and the address. Uniformly random across
 * channels, so that the clients of one list spread their binds over every
 * balancer rather than all using the first listed; stable for one channel,
 * so that a re-resolution listing the same balancers keeps its choice.
 * (grpc-js's pick_first `shuffleAddressList` is not used: its shuffle never
 * puts the second of three addresses first.)
 */
export function channelOrder<T extends { addresses: readonly unknown[] }>(endpoints: readonly T[], seed: string): T[] {
  const key = (e: T) => {
    const a = e.addresses[0] as { host?: string; port?: number } | undefined;
    return fnv1a(`${seed}|${a?.host ?? ''}:${a?.port ?? ''}`);
  };
  return endpoints.map((e) => ({ e, rank: key(e) })).sort((x, y) => x.rank - y.rank).map((x) => x.e);
}

/** A place calls can go: the balancer, or the replica the channel is bound to. */
class Target {
  state: ConnectivityState = ConnectivityState.IDLE;
  /** Gives up on the target if it is not READY in time (set while connecting). */
  connectTimer: NodeJS.Timeout | null = null;
  picker: Picker;
  error: string | null = null;
  /** Has been READY: an IDLE state after that means the connection was lost. */
  wasReady = false;
  private readonly child: experimental.ChildLoadBalancerHandler;
  private resolver: experimental.Resolver | null = null;
  destroyed = false;

  constructor(
    /** How hops, events and errors name it: host:port; the balancer's is every address it may use (it may change on re-resolution). */
    public label: string,
    helper: ChannelControlHelper,
    private readonly onChange: (target: Target) => void,
  ) {
    this.child = new experimental.ChildLoadBalancerHandler(
      experimental.createChildChannelControlHelper(helper, {
        updateState: (state, picker, error) => {
          if (this.destroyed) return;
          this.state = state;
          if (state === ConnectivityState.READY) this.wasReady = true;
          this.picker = picker;
          this.error = error;
          this.onChange(this);
        },
      }),
    );
    this.picker = new experimental.QueuePicker(this.child as unknown as experimental.LoadBalancer);
  }

  update(endpoints: StatusOr<Endpoint[]>, options: ChannelOptions, note: string): void {
    this.child.updateAddressList(endpoints as never, pickFirst(), options, note);
  }

  /** Starts connecting to a host:port (resolving it if it is a name). */
  connectTo(address: string, options: ChannelOptions): void {
    const parsed = parseHostPort(address);
    if (typeof parsed === 'string') {
      this.update({ ok: false, error: { code: Status.UNAVAILABLE, details: parsed, metadata: new Metadata() } }, options, '');
      return;
    }
    if (isIP(parsed.host) !== 0) {
      this.update({ ok: true, value: [{ addresses: [{ host: parsed.host, port: parsed.port }] }] }, options, '');
      return;
    }
    this.resolver = experimental.createResolver(
      { scheme: 'dns', path: address },
      ((endpoints: StatusOr<Endpoint[]>) => {
        if (!this.destroyed) this.update(endpoints, options, `resolving ${address}`);
        return true;
      }) as never,
      options,
    );
    this.resolver.updateResolution();
  }

  exitIdle(): void {
    this.child.exitIdle();
  }

  resetBackoff(): void {
    this.child.resetBackoff();
  }

  destroy(): void {
    this.destroyed = true;
    if (this.connectTimer !== null) clearTimeout(this.connectTimer);
    this.resolver?.destroy();
    this.child.destroy();
  }
}

/** One member of the binding in force: its target, its share, and this channel's own calls there. */
class Member {
  /** This channel's calls in flight on this member (picked and started, not ended). */
  inFlight = 0;
  /**
   * Of those, the calls whose first attempt this is: what the stall bound
   * counts. Re-attempts come in bursts (the calls a hung replica held,
   * re-sent together when keepalive closes its connection; the calls that
   * waited for a binding, forwarded together) that say nothing about the
   * member they land on.
   */
  firstInFlight = 0;
  /** Since when calls have been in flight here with none completing (ms), or null. */
  waitingSinceMs: number | null = null;
  constructor(
    readonly target: Target,
    /** Share of the binding, per-mille (1..1000). */
    public permille: number,
  ) {}
}

/** The binding in force: 1..16 members; a new epoch each time it changes. */
class Binding {
  /** The stall watchdog of a one-member binding (armed while calls wait). */
  stallTimer: NodeJS.Timeout | null = null;
  /** Smooth weighted round robin credits, one per member (see smooth-wrr.ts). */
  readonly credits: number[] = [];
  constructor(
    public members: Member[],
    /** The `rebind-binding` string it came from; null for a single `rebind-forward`. */
    readonly text: string | null,
    /** Increases with every change of binding: an attempt picked in an older epoch reports on a binding gone. */
    readonly epoch: number,
  ) {}
  /** How events name it: the address of a single member, else the binding string. */
  get label(): string {
    return this.members.length === 1 && this.text === null ? this.members[0]!.target.label : (this.text ?? this.members.map((m) => `${m.target.label}=${m.permille}`).join(','));
  }
}

/** The random source of per-call draws (replaceable by tests, see {@link setPickRandom}). */
let pickRandom: () => number = Math.random;
/** Replaces the random source of the per-call draws (tests); no argument restores Math.random. */
export function setPickRandom(random?: () => number): void {
  pickRandom = random ?? Math.random;
}

/**
 * A channel's usual calls in flight: the calls in flight (on their first
 * attempt, see Member.firstInFlight) that each new call found when it
 * started (not counting itself), averaged over those starts with weights
 * decaying by age, e^(-age / tau). Kept as two decayed sums
 * (samples and weights), so the average is exact from the first sample on
 * (no warm-up bias toward 0) and, after a quiet spell, the next sample
 * counts almost alone. A pile-up of a few hundred ms barely moves it: at
 * 50 calls/s the weights of the last tau hold some 250 call starts. What it
 * cannot tell from a legitimate rise in concurrency: a pile-up that grows
 * by fewer than about 2 x factor^2 x baseline / tau calls per second (6.4 x
 * baseline per second with the defaults) is followed by the baseline and
 * never reaches the bound; a burst of calls started together (a flush of
 * calls queued while connecting) raises it for a few tau.
 *
 * Times are passed in (ms, any monotonic clock) so tests can drive it.
 */
export class InFlightBaseline {
  private sum = 0;
  private weight = 0;
  private lastMs: number | null = null;
  constructor(readonly tauMs: number = STALL_BASELINE_TAU_MS) {}

  /** A call started at `nowMs` finding `inFlight` of the channel's calls in flight. */
  sample(inFlight: number, nowMs: number): void {
    if (this.lastMs !== null) {
      // A clock that steps back decays nothing rather than growing the weights.
      const decay = Math.exp(-Math.max(0, nowMs - this.lastMs) / this.tauMs);
      this.sum *= decay;
      this.weight *= decay;
    }
    this.lastMs = Math.max(nowMs, this.lastMs ?? nowMs);
    this.sum += inFlight;
    this.weight += 1;
  }

  /** The baseline, calls in flight; 0 before the first sample. */
  get value(): number {
    return this.weight === 0 ? 0 : this.sum / this.weight;
  }
}

/**
 * The stall bound of a one-member binding, calls in flight:
 * max(floor, factor x baseline), capped by `stallInFlight` when set.
 */
export function stallLimit(config: Pick<RebindLbConfig, 'stallInFlight' | 'stallInFlightFloor' | 'stallFactor'>, baseline: number): number {
  const adaptive = Math.max(config.stallInFlightFloor, config.stallFactor * baseline);
  return config.stallInFlight === null ? adaptive : Math.min(config.stallInFlight, adaptive);
}

const DROP_METADATA = new Metadata();
const QUEUE: PickResult = { pickResultType: experimental.PickResultType.QUEUE, subchannel: null, status: null, onCallStarted: null, onCallEnded: null };

/** Picks on the current target (or a member of the binding) and watches each attempt's end for forwards and bindings. */
class RebindPicker implements Picker {
  constructor(
    private readonly policy: RebindLoadBalancer,
    /** Where picks go when there is no binding: the balancer or the pinned owner. */
    private readonly target: Target,
    /** The binding picks go to, if any. */
    private readonly binding: Binding | null,
    private readonly balancerUnreachable: boolean,
    private readonly affinity: string | null,
    /** Picks go to the balancer (not to a bound or pinned replica). */
    private readonly toBalancer: boolean,
  ) {}

  pick(args: PickArgs): PickResult {
    // The pick's metadata is the attempt's own copy, the one that is sent.
    if (this.affinity !== null) args.metadata.set(AFFINITY_HEADER, this.affinity);
    const record = this.policy.calls.get(args.extraPickInfo);
    if (this.toBalancer) {
      const avoid = this.policy.avoidList(record);
      if (avoid !== null) args.metadata.set(AVOID_HEADER, avoid);
    }
    if (record?.failure) {
      return {
        pickResultType: experimental.PickResultType.DROP,
        subchannel: null,
        status: { ...record.failure, metadata: DROP_METADATA },
        onCallStarted: null,
        onCallEnded: null,
      };
    }
    const binding = this.binding;
    let member: Member | null = null;
    if (binding !== null) {
      member = this.policy.chooseMember(binding);
      // The binding was given up (its one member stopped answering): this call never reached it; it is picked again.
      if (member === null) return QUEUE;
    }
    const target = member?.target ?? this.target;
    const result = target.picker.pick(args);
    if (result.pickResultType === experimental.PickResultType.TRANSIENT_FAILURE && this.balancerUnreachable && result.status !== null) {
      return { ...result, status: { ...result.status, details: `rebind: balancer ${this.target.label} is unreachable: ${result.status.details}` } };
    }
    if (result.pickResultType !== experimental.PickResultType.COMPLETE) return result;
    const innerStarted = result.onCallStarted;
    const innerEnded = result.onCallEnded;
    const epoch = binding?.epoch ?? -1;
    // A call's later attempt (re-sent after a forward or a failure) is not a new call (see Member.firstInFlight).
    const first = !this.policy.attempted.has(args.extraPickInfo);
    return {
      ...result,
      onCallStarted: () => {
        innerStarted?.();
        this.policy.attempted.add(args.extraPickInfo);
        if (member !== null) this.policy.callStarted(member, first);
      },
      onCallEnded: (code, details, trailers) => {
        innerEnded?.(code, details, trailers);
        if (member !== null) this.policy.callEnded(member, first);
        if (code === FORWARD_STATUS) this.policy.attemptEnded(args.extraPickInfo, target, trailers, epoch);
        else if (code === Status.OK && trailers.get(BINDING_TRAILER).length > 0) this.policy.bindingOffered(target, trailers, epoch);
      },
    };
  }
}

export class RebindLoadBalancer implements experimental.LoadBalancer {
  /** Per-call records, keyed by the call's pick-information object. */
  readonly calls = new WeakMap<object, CallRecord>();
  /**
   * Calls (their pick-information objects) with an attempt started: a later
   * pick for one is a re-attempt (after a forward, or a failure the retry
   * policy re-sends). Weak: an entry lives as long as its call.
   */
  readonly attempted = new WeakSet<object>();
  private balancer: Target | null = null;
  /** The binding in force: a single replica or a weighted set; null while calls go to the balancer. */
  private bound: Binding | null = null;
  /** Epoch of the latest binding (see {@link Binding.epoch}). */
  private epoch = 0;
  /** With an affinity token: the owner replica, used for every call while reachable. */
  private pinned: Target | null = null;
  private config = new RebindLbConfig(DEFAULT_MAX_FORWARDS);
  private options: ChannelOptions = {};
  private clientId: string | null = null;
  /**
   * The balancer's voucher keys (its key ring), pinned from its own
   * forwards and extended by endorsements in replicas' key chains.
   */
  private readonly pinnedKeys = new PinnedKeys();
  /** The group the balancer bound this channel in (from its vouchers). */
  private group: string | null = null;
  /** This channel's usual calls in flight on its binding, for the stall bound (kept across bindings: it is the channel's own concurrency). */
  private readonly baseline = new InFlightBaseline();
  /** Replicas that failed this channel lately (unreachable, bad forward), until a time (ms). */
  private readonly avoid = new Map<string, number>();

  /**
   * The rebind-avoid header for a pick that goes to the balancer: replicas
   * this call already went through, and replicas that failed the channel
   * lately; null when there are none (the usual case).
   */
  avoidList(record: CallRecord | undefined): string | null {
    if (this.avoid.size === 0 && (record === undefined || record.hops.length <= 1)) return null;
    const now = Date.now();
    const out = new Set<string>();
    for (const [address, until] of this.avoid) {
      if (until < now) this.avoid.delete(address);
      else out.add(address);
    }
    const balancer = this.balancer?.label;
    for (const hop of record?.hops ?? []) if (hop !== balancer) out.add(hop);
    return out.size === 0 ? null : [...out].slice(0, MAX_AVOID).join(',');
  }

  private avoidFor(address: string): void {
    if (this.avoid.size >= MAX_AVOID) this.avoid.delete(this.avoid.keys().next().value!);
    this.avoid.set(address, Date.now() + AVOID_MS);
  }

  /** Seeds this channel's own order of the balancer's addresses (see channelOrder). */
  private readonly balancerSeed = Math.random().toString(36).slice(2);

  constructor(private readonly helper: ChannelControlHelper) {}

  updateAddressList(endpointList: StatusOr<Endpoint[]>, lbConfig: experimental.TypedLoadBalancingConfig, options: ChannelOptions, note: string): boolean {
    if (!(lbConfig instanceof RebindLbConfig)) return false;
    this.config = lbConfig;
    this.options = options;
    this.clientId = identifyCaller(String(options['grpc.secondary_user_agent'] ?? '')).clientId;
    // The balancer target is one pick_first over every address the channel's target resolves
    // to (several balancers: an HA set), in this channel's own random order: it uses the first
    // it reaches and fails over to the next.
    // A forward from whichever it is connected to is the balancer's (from === this.balancer).
    const addresses: string[] = [];
    if (endpointList.ok) for (const e of endpointList.value) for (const a of e.addresses) if ('host' in a) addresses.push(formatHostPort(a.host, a.port));
    const label = addresses.length === 0 ? 'balancer' : addresses.length <= MAX_BALANCERS ? addresses.join(',') : `${addresses.slice(0, MAX_BALANCERS).join(',')},+${addresses.length - MAX_BALANCERS}`;
    if (this.balancer === null) this.balancer = new Target(label, this.helper, (t) => this.targetChanged(t));
    // A new resolution (a balancer added or gone, a new order) updates the same pick_first, which
    // keeps its connection if that address is still listed: no call through the balancer is cut.
    else if (addresses.length > 0) this.balancer.label = label;
    this.balancer.update(endpointList.ok ? { ok: true, value: channelOrder(endpointList.value, this.balancerSeed) } : endpointList, options, note);
    const owner = lbConfig.affinity === null ? null : (parseAffinityToken(lbConfig.affinity) as { address: string }).address;
    if (owner !== this.pinned?.label) {
      this.pinned?.destroy();
      this.pinned = null;
      if (owner !== null) {
        this.pinned = new Target(owner, this.helper, (t) => this.targetChanged(t));
        this.pinned.connectTo(owner, options);
        this.pinned.exitIdle();
      }
    }
    return true;
  }

  exitIdle(): void {
    if (this.pinned !== null) this.pinned.exitIdle();
    else if (this.bound !== null) for (const m of this.bound.members) m.target.exitIdle();
    else this.balancer?.exitIdle();
  }

  resetBackoff(): void {
    this.balancer?.resetBackoff();
    for (const m of this.bound?.members ?? []) m.target.resetBackoff();
    this.pinned?.resetBackoff();
  }

  destroy(): void {
    this.balancer?.destroy();
    this.dropBinding();
    this.pinned?.destroy();
    this.balancer = null;
    this.pinned = null;
  }

  getTypeName(): string {
    return POLICY_NAME;
  }

  /** host:port the channel is bound to (the heaviest member of a set), or null while it uses the balancer. */
  get boundAddress(): string | null {
    const members = this.bound?.members;
    if (members === undefined || members.length === 0) return null;
    return members.reduce((best, m) => (m.permille > best.permille ? m : best)).target.label;
  }

  /** The members of the binding in force with their shares (per-mille), empty while unbound. */
  get boundMembers(): BindingMember[] {
    return (this.bound?.members ?? []).map((m) => ({ address: m.target.label, permille: m.permille }));
  }

  /**
   * Where calls go now: the pinned owner while it is reachable (when it is
   * not, the balancer, which routes the call to the owner or says it is
   * gone); else the binding; else the balancer.
   */
  private route(): Target | Binding | null {
    if (this.pinned !== null && this.pinned.state !== ConnectivityState.TRANSIENT_FAILURE) return this.pinned;
    return this.pinned === null ? (this.bound ?? this.balancer) : this.balancer;
  }

  private publish(): void {
    const route = this.route();
    if (route === null) return;
    if (route instanceof Binding) {
      // Ready as soon as one member is: picks go to ready members first.
      const states = route.members.map((m) => m.target.state);
      const state = states.includes(ConnectivityState.READY) ? ConnectivityState.READY : ConnectivityState.CONNECTING;
      this.helper.updateState(state, new RebindPicker(this, this.balancer!, route, false, this.config.affinity, false), null);
      return;
    }
    const unreachable = route === this.balancer && route.state === ConnectivityState.TRANSIENT_FAILURE;
    this.helper.updateState(route.state, new RebindPicker(this, route, null, unreachable, this.config.affinity, route === this.balancer), route.error);
  }

  private memberOf(target: Target): Member | undefined {
    return this.bound?.members.find((m) => m.target === target);
  }

  private targetChanged(target: Target): void {
    if (target === this.pinned) {
      // The owner stays pinned whatever happens; reconnect when idle.
      if (target.state === ConnectivityState.IDLE) target.exitIdle();
      this.publish();
    } else if (this.memberOf(target) !== undefined) {
      if (target.state === ConnectivityState.TRANSIENT_FAILURE) {
        this.avoidFor(target.label);
        this.dropMember(target, `replica ${target.label} unreachable: ${target.error ?? 'connection failed'}`);
        return;
      }
      if (target.state === ConnectivityState.IDLE && target.wasReady) {
        // The connection was lost (replica crashed, hung past keepalive, or
        // closed it): the balancer, which knows whether the replica is still
        // healthy, binds the channel again rather than us reconnecting blindly
        // to a process that may accept TCP but never answer.
        this.dropMember(target, `lost the connection to replica ${target.label}`);
        return;
      }
      if (target.state === ConnectivityState.IDLE) target.exitIdle();
      this.watchConnect(target);
      this.publish();
    } else if (target === this.balancer && this.route() === this.balancer) {
      this.publish();
    }
  }

  /** Starts or stops the connect timer of a bound member as its state changes. */
  private watchConnect(target: Target): void {
    if (target.state === ConnectivityState.READY) {
      if (target.connectTimer !== null) clearTimeout(target.connectTimer);
      target.connectTimer = null;
      return;
    }
    if (target.connectTimer !== null) return;
    target.connectTimer = setTimeout(() => {
      target.connectTimer = null;
      if (this.memberOf(target) === undefined || target.state === ConnectivityState.READY) return;
      this.avoidFor(target.label);
      this.dropMember(target, `replica ${target.label} not connected within ${this.config.connectTimeoutMs} ms`);
    }, this.config.connectTimeoutMs);
    target.connectTimer.unref?.();
  }

  /**
   * A member failed: a set goes on with the others (their shares now divide
   * its calls); the last member's failure unbinds, and the balancer binds
   * the channel again.
   */
  private dropMember(target: Target, reason: string): void {
    const binding = this.bound;
    if (binding === null) return;
    if (binding.members.length <= 1) {
      this.unbind(reason);
      return;
    }
    binding.members = binding.members.filter((m) => m.target !== target);
    binding.credits.length = 0; // the smooth round robin starts over on the members left
    target.destroy();
    emit('unbound', target.label, reason, this.clientId);
    this.publish();
  }

  /** The member a call goes to; null if the binding was just given up (the caller re-picks). */
  chooseMember(binding: Binding): Member | null {
    const members = binding.members;
    if (members.length === 1) {
      const only = members[0]!;
      const limit = stallLimit(this.config, this.baseline.value);
      if (only.firstInFlight >= limit) {
        // Not keeping up: give it up before sending it one more call. Deferred: a picker must not change the state it picks on.
        const why = `${only.firstInFlight} calls in flight on ${only.target.label} (limit ${Math.ceil(limit)}: baseline ${this.baseline.value.toFixed(2)} x ${this.config.stallFactor}, floor ${this.config.stallInFlightFloor}${this.config.stallInFlight !== null ? `, cap ${this.config.stallInFlight}` : ''})`;
        setImmediate(() => this.giveUp(binding, only, why));
        return null;
      }
      return only;
    }
    const ready = members.filter((m) => m.target.state === ConnectivityState.READY);
    if (ready.length === members.length || ready.length === 0) {
      const first = smoothNext(members.map((m) => m.permille), binding.credits);
      return members[pickOfTwo(members, pickRandom, first)]!;
    }
    return ready[pickOfTwo(ready, pickRandom)]!;
  }

  /** An attempt started on a member (`first`: the call's first attempt). */
  callStarted(member: Member, first: boolean): void {
    // Each new call samples the channel's new calls in flight on its binding (all members: if a
    // set shrinks to one member, that one gets them all), as it found them.
    const bound = this.bound;
    if (first) {
      let inFlight = member.firstInFlight;
      if (bound !== null && bound.members.includes(member)) {
        inFlight = 0;
        for (const m of bound.members) inFlight += m.firstInFlight;
      }
      this.baseline.sample(inFlight, performance.now());
      member.firstInFlight++;
    }
    emit('callSent', member.target.label, this.clientId);
    member.inFlight++;
    if (member.waitingSinceMs !== null) return;
    member.waitingSinceMs = Date.now();
    if (bound !== null && bound.members.length === 1 && bound.members[0] === member && this.config.stallTimeoutMs > 0) this.armStallTimer(bound, member, this.config.stallTimeoutMs);
  }

  /** An attempt ended on a member (whatever its status: an answer is progress). */
  callEnded(member: Member, first: boolean): void {
    member.inFlight = Math.max(0, member.inFlight - 1);
    if (first) member.firstInFlight = Math.max(0, member.firstInFlight - 1);
    member.waitingSinceMs = member.inFlight > 0 ? Date.now() : null;
  }

  /** Checks a one-member binding when its calls have waited stallTimeoutMs with none completing. */
  private armStallTimer(binding: Binding, member: Member, delayMs: number): void {
    if (binding.stallTimer !== null) return;
    binding.stallTimer = setTimeout(() => {
      binding.stallTimer = null;
      if (binding !== this.bound || binding.members.length !== 1 || member.waitingSinceMs === null) return;
      const waited = Date.now() - member.waitingSinceMs;
      if (waited >= this.config.stallTimeoutMs) {
        this.giveUp(binding, member, `no call completed on ${member.target.label} for ${waited} ms with ${member.inFlight} in flight (limit ${this.config.stallTimeoutMs} ms)`);
      } else {
        this.armStallTimer(binding, member, this.config.stallTimeoutMs - waited);
      }
    }, delayMs);
    binding.stallTimer.unref?.();
  }

  /** Gives up a one-member binding whose member stopped answering: back to the balancer, asking it to avoid that member. */
  private giveUp(binding: Binding, member: Member, reason: string): void {
    if (binding !== this.bound) return;
    this.avoidFor(member.target.label);
    this.unbind(`gave up replica ${member.target.label}: ${reason}`);
  }

  /** Destroys the binding's targets (and its watchdog) without telling anyone. */
  private dropBinding(): void {
    const previous = this.bound;
    if (previous === null) return;
    this.bound = null;
    if (previous.stallTimer !== null) clearTimeout(previous.stallTimer);
    for (const m of previous.members) m.target.destroy();
  }

  /**
   * Binds the channel to `members` (a single forward is one member of 1000).
   * Members also in the current binding keep their connection and their
   * calls in flight; the others are connected anew, and the ones left are
   * closed (their calls in flight finish: grpc-js closes a transport
   * gracefully once no policy uses it).
   */
  private bind(members: readonly BindingMember[], text: string | null, reason: string): void {
    const previous = this.bound;
    if (previous !== null && previous.text === text && previous.members.length === members.length && members.every((m, i) => previous.members[i]!.target.label === m.address && previous.members[i]!.permille === m.permille)) {
      return;
    }
    const from = previous?.label ?? this.balancer?.label ?? 'balancer';
    const kept = new Map((previous?.members ?? []).map((m) => [m.target.label, m]));
    const next: Member[] = [];
    const fresh: Member[] = [];
    for (const m of members) {
      const old = kept.get(m.address);
      if (old !== undefined) {
        kept.delete(m.address);
        old.permille = m.permille;
        next.push(old);
      } else {
        const member = new Member(new Target(m.address, this.helper, (t) => this.targetChanged(t)), m.permille);
        next.push(member);
        fresh.push(member);
      }
    }
    if (previous !== null) {
      if (previous.stallTimer !== null) clearTimeout(previous.stallTimer);
      for (const m of kept.values()) m.target.destroy();
    }
    const binding = new Binding(next, text, ++this.epoch);
    this.bound = binding;
    for (const m of fresh) {
      m.target.connectTo(m.target.label, this.options);
      m.target.exitIdle();
      this.watchConnect(m.target);
    }
    // A kept single member with calls waiting keeps its watchdog running.
    if (next.length === 1 && next[0]!.waitingSinceMs !== null && this.config.stallTimeoutMs > 0) this.armStallTimer(binding, next[0]!, Math.max(0, next[0]!.waitingSinceMs + this.config.stallTimeoutMs - Date.now()));
    emit('forwarded', from, binding.label, reason, this.clientId);
    this.publish();
  }

  private unbind(reason: string): void {
    const previous = this.bound;
    if (previous === null) return;
    const label = previous.label;
    this.dropBinding();
    emit('unbound', label, reason, this.clientId);
    this.balancer?.exitIdle();
    this.publish();
  }

  /** Whether an attempt picked on `from` in binding epoch `epoch` reports on the binding in force (else it is stale). */
  private current(from: Target, epoch: number): boolean {
    const route = this.route();
    if (route instanceof Binding) return route.epoch === epoch && route.members.some((m) => m.target === from);
    return route === from;
  }

  /**
   * Validates a `rebind-binding` trailer: from the balancer it is trusted;
   * from a replica it needs the balancer's voucher for the exact string.
   * Returns the members, or why not.
   */
  private acceptBinding(from: Target, text: string, trailers: Metadata): BindingMember[] | string {
    const parsed = parseBinding(text);
    if (typeof parsed === 'string') return `malformed binding: ${parsed}`;
    if (from === this.balancer) return parsed;
    const vouched = this.checkReplicaVoucher(text, trailers);
    return vouched === true ? parsed : vouched;
  }

  /**
   * Checks a replica's voucher for `target` under the pinned keys, extended
   * by its key chain if need be (see {@link PinnedKeys.check}).
   */
  private checkReplicaVoucher(target: string, trailers: Metadata): true | string {
    const chain = trailers.get(KEY_CHAIN_TRAILER)[0];
    return this.pinnedKeys.check(this.group, target, trailers.get(VOUCH_TRAILER)[0] as string | undefined, chain === undefined ? undefined : String(chain));
  }

  /** Pins the balancer's keys (its whole ring when it sends it, else its one key) and group from its own trailers. */
  private pinBalancer(trailers: Metadata): void {
    const ring = trailers.get(BALANCER_KEYS_TRAILER)[0];
    const single = trailers.get(BALANCER_KEY_TRAILER)[0];
    if (ring !== undefined) for (const key of String(ring).split(',').slice(-MAX_PINNED_KEYS)) this.pinnedKeys.pin(key);
    // The signing key last: it is the most recently pinned.
    if (single !== undefined) this.pinnedKeys.pin(String(single));
    this.group = voucherGroup(trailers.get(VOUCH_TRAILER)[0] as string | undefined) ?? this.group;
  }

  /**
   * An OK response carried a binding ("piggy-backed" re-binding): applied to
   * later calls if it comes from the balancer the channel uses or from a
   * member of the binding in force (picked in this binding), with a valid
   * voucher; otherwise ignored (an unvouched one raises `refused`).
   */
  bindingOffered(from: Target, trailers: Metadata, epoch: number): void {
    if (this.config.affinity !== null) return;
    if (!this.current(from, epoch)) return; // stale: says nothing about the binding in force
    const text = String(trailers.get(BINDING_TRAILER)[0]);
    if (from === this.balancer) this.pinBalancer(trailers);
    const accepted = this.acceptBinding(from, text, trailers);
    if (typeof accepted === 'string') {
      emit('refused', from.label, text.slice(0, 100), accepted, this.clientId);
      return;
    }
    this.bind(accepted, text, String(trailers.get(FORWARD_REASON_TRAILER)[0] ?? 'advisory'));
  }

  /**
   * After refusing a replica's forward: a replica that sent us somewhere the
   * balancer never vouched for is avoided for a while, unless the only fault
   * was a key this channel does not know. That is what a healthy replica
   * sends after the balancer rotated its key past what the channel can
   * reach, and the balancer, which re-pins the channel's keys, may well bind
   * it to that replica again. (A replica bent on bouncing clients gains
   * nothing: it can forward them to the balancer without any voucher.)
   */
  private avoidAfterRefusal(from: Target, why: string): void {
    if (!why.startsWith(UNKNOWN_KEY)) this.avoidFor(from.label);
  }

  /** Called when an attempt ended with the forward status. */
  attemptEnded(callKey: object, from: Target, trailers: Metadata, epoch = -1): void {
    const values = trailers.get(FORWARD_TRAILER);
    if (values.length === 0) return; // the application's own ABORTED
    let destination = String(values[0]);
    const record = this.calls.get(callKey) ?? { hops: [from.label], failure: null };
    this.calls.set(callKey, record);
    const fromBalancer = from === this.balancer;
    const bindingText = trailers.get(BINDING_TRAILER)[0];
    let set: BindingMember[] | null = null;
    // The balancer is the channel's own target: trust its forwards, and pin its key and group
    // (replicas' forwards are followed only with vouchers for this group).
    if (fromBalancer) this.pinBalancer(trailers);
    if (bindingText !== undefined && destination !== FORWARD_TO_BALANCER && this.config.affinity === null) {
      // A set: vouched as one unit (the voucher's target is the exact binding string).
      const text = String(bindingText);
      const accepted = this.acceptBinding(from, text, trailers);
      if (typeof accepted !== 'string') {
        set = accepted;
        destination = text;
      } else if (accepted.startsWith('malformed binding')) {
        emit('refused', from.label, text.slice(0, 100), accepted, this.clientId);
        record.failure = { code: Status.UNAVAILABLE, details: `rebind: ${from.label} sent a ${accepted.slice(0, 200)}; not followed` };
        return;
      } else {
        emit('refused', from.label, text.slice(0, 100), accepted, this.clientId);
        this.avoidAfterRefusal(from, accepted);
        destination = FORWARD_TO_BALANCER;
      }
    } else if (!fromBalancer && destination !== FORWARD_TO_BALANCER && this.config.affinity === null) {
      // A replica may send us elsewhere only where the balancer vouched for.
      const vouched = this.checkReplicaVoucher(destination, trailers);
      if (vouched !== true) {
        emit('refused', from.label, destination.slice(0, 100), vouched, this.clientId);
        this.avoidAfterRefusal(from, vouched);
        destination = FORWARD_TO_BALANCER;
      }
    }
    if (this.config.affinity !== null) {
      record.failure = {
        code: Status.UNAVAILABLE,
        details: `rebind: ${from.label} answered a call pinned to ${this.pinned?.label ?? 'its owner'} with a forward to ${destination.slice(0, 100)}; not followed`,
      };
      return;
    }
    const back = destination === FORWARD_TO_BALANCER;
    if (!back && set === null && typeof parseHostPort(destination) === 'string') {
      record.failure = { code: Status.UNAVAILABLE, details: `rebind: ${from.label} sent a malformed forward trailer (${JSON.stringify(destination.slice(0, 100))}); not followed` };
      return;
    }
    record.hops.push(back ? (this.balancer?.label ?? 'balancer') : destination);
    const forwards = record.hops.length - 1;
    if (forwards > this.config.maxForwards) {
      record.failure = {
        code: Status.UNAVAILABLE,
        details: `rebind: gave up after ${forwards} forwards (limit ${this.config.maxForwards}): ${record.hops.join(' -> ')}`,
      };
      return;
    }
    // A stale forward (the attempt was picked on a target the channel has left
    // since, or in a binding that has changed since: a call that was in flight
    // at a replica that drained, or a racing first call the balancer answered
    // after another bound the channel) says nothing about the current binding:
    // the call is re-sent, and picks it.
    if (!this.current(from, epoch)) return;
    const reason = String(trailers.get(FORWARD_REASON_TRAILER)[0] ?? 'bind');
    const bound = this.bound;
    if (back && reason === 'drain' && bound !== null && bound.members.length > 1 && bound.members.some((m) => m.target === from)) {
      // One member of a set is shutting down: the others carry on (the call is re-sent and picks one of them).
      this.dropMember(from, `${from.label} is draining`);
    } else if (back) this.unbind(`forwarded back to the balancer by ${from.label} (${reason})`);
    else if (set !== null) this.bind(set, destination, reason);
    else this.bind([{ address: destination, permille: 1000 }], null, reason);
  }
}

let registered = false;

/** Registers the "rebind" policy with grpc-js (idempotent). */
export function registerRebindPolicy(): void {
  if (registered) return;
  experimental.registerLoadBalancerType(POLICY_NAME, RebindLoadBalancer as never, RebindLbConfig);
  registered = true;
}

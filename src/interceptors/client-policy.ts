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
 * This uses grpc-js's experimental load-balancing API; the package pins
 * @grpc/grpc-js ~1.14 for that reason.
 */
import { connectivityState as ConnectivityState, experimental, Metadata, status as Status, type ChannelOptions } from '@grpc/grpc-js';
import { isIP } from 'node:net';
import { formatHostPort, parseHostPort } from '../common/address';
import { AFFINITY_HEADER, FORWARD_STATUS, FORWARD_TO_BALANCER, FORWARD_TRAILER, identifyCaller, parseAffinityToken } from '../common/wire';

type Endpoint = experimental.Endpoint;
type Picker = experimental.Picker;
type PickArgs = experimental.PickArgs;
type PickResult = experimental.PickResult;
type ChannelControlHelper = experimental.ChannelControlHelper;
type StatusOr<T> = { ok: true; value: T } | { ok: false; error: { code: Status; details: string; metadata: Metadata } };

export const POLICY_NAME = 'rebind';
export const DEFAULT_MAX_FORWARDS = 4;
export const MAX_MAX_FORWARDS = 8;

/** The policy's configuration, from the service config's loadBalancingConfig. */
export class RebindLbConfig implements experimental.TypedLoadBalancingConfig {
  constructor(
    readonly maxForwards: number,
    /** Affinity token: every call of the channel is pinned to that replica. */
    readonly affinity: string | null = null,
  ) {}
  getLoadBalancerName(): string {
    return POLICY_NAME;
  }
  toJsonObject(): object {
    return { [POLICY_NAME]: { maxForwards: this.maxForwards, ...(this.affinity !== null ? { affinity: this.affinity } : {}) } };
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
    return new RebindLbConfig(maxForwards, affinity as string | null);
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

/** A place calls can go: the balancer, or the replica the channel is bound to. */
class Target {
  state: ConnectivityState = ConnectivityState.IDLE;
  picker: Picker;
  error: string | null = null;
  private readonly child: experimental.ChildLoadBalancerHandler;
  private resolver: experimental.Resolver | null = null;
  destroyed = false;

  constructor(
    readonly label: string,
    helper: ChannelControlHelper,
    private readonly onChange: (target: Target) => void,
  ) {
    this.child = new experimental.ChildLoadBalancerHandler(
      experimental.createChildChannelControlHelper(helper, {
        updateState: (state, picker, error) => {
          if (this.destroyed) return;
          this.state = state;
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
    this.resolver?.destroy();
    this.child.destroy();
  }
}

const DROP_METADATA = new Metadata();

/** Picks on the current target and watches each attempt's end for forwards. */
class RebindPicker implements Picker {
  constructor(
    private readonly policy: RebindLoadBalancer,
    private readonly target: Target,
    private readonly balancerUnreachable: boolean,
    private readonly affinity: string | null,
  ) {}

  pick(args: PickArgs): PickResult {
    // The pick's metadata is the attempt's own copy, the one that is sent.
    if (this.affinity !== null) args.metadata.set(AFFINITY_HEADER, this.affinity);
    const record = this.policy.calls.get(args.extraPickInfo);
    if (record?.failure) {
      return {
        pickResultType: experimental.PickResultType.DROP,
        subchannel: null,
        status: { ...record.failure, metadata: DROP_METADATA },
        onCallStarted: null,
        onCallEnded: null,
      };
    }
    const result = this.target.picker.pick(args);
    if (result.pickResultType === experimental.PickResultType.TRANSIENT_FAILURE && this.balancerUnreachable && result.status !== null) {
      return { ...result, status: { ...result.status, details: `rebind: balancer ${this.target.label} is unreachable: ${result.status.details}` } };
    }
    if (result.pickResultType !== experimental.PickResultType.COMPLETE) return result;
    const innerEnded = result.onCallEnded;
    const target = this.target;
    return {
      ...result,
      onCallEnded: (code, details, trailers) => {
        innerEnded?.(code, details, trailers);
        if (code === FORWARD_STATUS) this.policy.attemptEnded(args.extraPickInfo, target, trailers);
      },
    };
  }
}

export class RebindLoadBalancer implements experimental.LoadBalancer {
  /** Per-call records, keyed by the call's pick-information object. */
  readonly calls = new WeakMap<object, CallRecord>();
  private balancer: Target | null = null;
  private bound: Target | null = null;
  /** With an affinity token: the owner replica, used for every call while reachable. */
  private pinned: Target | null = null;
  private config = new RebindLbConfig(DEFAULT_MAX_FORWARDS);
  private options: ChannelOptions = {};
  private clientId: string | null = null;

  constructor(private readonly helper: ChannelControlHelper) {}

  updateAddressList(endpointList: StatusOr<Endpoint[]>, lbConfig: experimental.TypedLoadBalancingConfig, options: ChannelOptions, note: string): boolean {
    if (!(lbConfig instanceof RebindLbConfig)) return false;
    this.config = lbConfig;
    this.options = options;
    this.clientId = identifyCaller(String(options['grpc.secondary_user_agent'] ?? '')).clientId;
    let label = 'balancer';
    if (endpointList.ok && endpointList.value.length > 0) {
      const first = endpointList.value[0]!.addresses[0];
      if (first !== undefined && 'host' in first) label = formatHostPort(first.host, first.port);
    }
    if (this.balancer === null || this.balancer.label !== label) {
      this.balancer?.destroy();
      this.balancer = new Target(label, this.helper, (t) => this.targetChanged(t));
    }
    this.balancer.update(endpointList, options, note);
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
    (this.pinned ?? this.bound ?? this.balancer)?.exitIdle();
  }

  resetBackoff(): void {
    this.balancer?.resetBackoff();
    this.bound?.resetBackoff();
    this.pinned?.resetBackoff();
  }

  destroy(): void {
    this.balancer?.destroy();
    this.bound?.destroy();
    this.pinned?.destroy();
    this.balancer = null;
    this.bound = null;
    this.pinned = null;
  }

  getTypeName(): string {
    return POLICY_NAME;
  }

  /** host:port the channel is bound to, or null while it uses the balancer. */
  get boundAddress(): string | null {
    return this.bound?.label ?? null;
  }

  /**
   * Where calls go now: the pinned owner while it is reachable (when it is
   * not, the balancer, which routes the call to the owner or says it is
   * gone); else the bound replica; else the balancer.
   */
  private current(): Target | null {
    if (this.pinned !== null && this.pinned.state !== ConnectivityState.TRANSIENT_FAILURE) return this.pinned;
    return this.pinned === null ? (this.bound ?? this.balancer) : this.balancer;
  }

  private publish(): void {
    const target = this.current();
    if (target === null) return;
    const unreachable = target === this.balancer && target.state === ConnectivityState.TRANSIENT_FAILURE;
    this.helper.updateState(target.state, new RebindPicker(this, target, unreachable, this.config.affinity), target.error);
  }

  private targetChanged(target: Target): void {
    if (target === this.pinned) {
      // The owner stays pinned whatever happens; reconnect when idle.
      if (target.state === ConnectivityState.IDLE) target.exitIdle();
      this.publish();
    } else if (target === this.bound) {
      if (target.state === ConnectivityState.TRANSIENT_FAILURE) {
        this.unbind(`replica ${target.label} unreachable: ${target.error ?? 'connection failed'}`);
        return;
      }
      if (target.state === ConnectivityState.IDLE) target.exitIdle();
      this.publish();
    } else if (target === this.balancer && this.current() === this.balancer) {
      this.publish();
    }
  }

  private bind(address: string, reason: string): void {
    if (this.bound?.label === address) return;
    const previous = this.bound;
    const from = previous?.label ?? this.balancer?.label ?? 'balancer';
    const next = new Target(address, this.helper, (t) => this.targetChanged(t));
    this.bound = next;
    previous?.destroy();
    next.connectTo(address, this.options);
    next.exitIdle();
    emit('forwarded', from, address, reason, this.clientId);
    this.publish();
  }

  private unbind(reason: string): void {
    const previous = this.bound;
    if (previous === null) return;
    this.bound = null;
    previous.destroy();
    emit('unbound', previous.label, reason, this.clientId);
    this.balancer?.exitIdle();
    this.publish();
  }

  /** Called when an attempt ended with the forward status. */
  attemptEnded(callKey: object, from: Target, trailers: Metadata): void {
    const values = trailers.get(FORWARD_TRAILER);
    if (values.length === 0) return; // the application's own ABORTED
    const destination = String(values[0]);
    const record = this.calls.get(callKey) ?? { hops: [from.label], failure: null };
    this.calls.set(callKey, record);
    if (this.config.affinity !== null) {
      record.failure = {
        code: Status.UNAVAILABLE,
        details: `rebind: ${from.label} answered a call pinned to ${this.pinned?.label ?? 'its owner'} with a forward to ${destination.slice(0, 100)}; not followed`,
      };
      return;
    }
    const back = destination === FORWARD_TO_BALANCER;
    if (!back && typeof parseHostPort(destination) === 'string') {
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
    const reason = String(trailers.get('rebind-forward-reason')[0] ?? 'bind');
    if (back) this.unbind(`forwarded back to the balancer by ${from.label} (${reason})`);
    else this.bind(destination, reason);
  }
}

let registered = false;

/** Registers the "rebind" policy with grpc-js (idempotent). */
export function registerRebindPolicy(): void {
  if (registered) return;
  experimental.registerLoadBalancerType(POLICY_NAME, RebindLoadBalancer as never, RebindLbConfig);
  registered = true;
}

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
import {
  AFFINITY_HEADER,
  AVOID_HEADER,
  MAX_AVOID,
  BALANCER_KEY_TRAILER,
  FORWARD_STATUS,
  FORWARD_TO_BALANCER,
  FORWARD_TRAILER,
  VOUCH_TRAILER,
  identifyCaller,
  parseAffinityToken,
} from '../common/wire';
import { balancerKey, checkVoucher, voucherGroup } from './vouch-check';
import type { KeyObject } from 'node:crypto';

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

/** The policy's configuration, from the service config's loadBalancingConfig. */
export class RebindLbConfig implements experimental.TypedLoadBalancingConfig {
  constructor(
    readonly maxForwards: number,
    /** Affinity token: every call of the channel is pinned to that replica. */
    readonly affinity: string | null = null,
    /** A bound replica not connected within this long is given up for another, ms. */
    readonly connectTimeoutMs = DEFAULT_CONNECT_TIMEOUT_MS,
  ) {}
  getLoadBalancerName(): string {
    return POLICY_NAME;
  }
  toJsonObject(): object {
    return {
      [POLICY_NAME]: { maxForwards: this.maxForwards, connectTimeoutMs: this.connectTimeoutMs, ...(this.affinity !== null ? { affinity: this.affinity } : {}) },
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
    return new RebindLbConfig(maxForwards, affinity as string | null, connectTimeoutMs);
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
    readonly label: string,
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

const DROP_METADATA = new Metadata();

/** Picks on the current target and watches each attempt's end for forwards. */
class RebindPicker implements Picker {
  constructor(
    private readonly policy: RebindLoadBalancer,
    private readonly target: Target,
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
  /** The balancer's voucher key, pinned from its own forwards. */
  private balancerKey: KeyObject | null = null;
  /** The group the balancer bound this channel in (from its vouchers). */
  private group: string | null = null;
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
    this.helper.updateState(target.state, new RebindPicker(this, target, unreachable, this.config.affinity, target === this.balancer), target.error);
  }

  private targetChanged(target: Target): void {
    if (target === this.pinned) {
      // The owner stays pinned whatever happens; reconnect when idle.
      if (target.state === ConnectivityState.IDLE) target.exitIdle();
      this.publish();
    } else if (target === this.bound) {
      if (target.state === ConnectivityState.TRANSIENT_FAILURE) {
        this.avoidFor(target.label);
        this.unbind(`replica ${target.label} unreachable: ${target.error ?? 'connection failed'}`);
        return;
      }
      if (target.state === ConnectivityState.IDLE && target.wasReady) {
        // The connection was lost (replica crashed, hung past keepalive, or
        // closed it): the balancer, which knows whether the replica is still
        // healthy, binds the channel again rather than us reconnecting blindly
        // to a process that may accept TCP but never answer.
        this.unbind(`lost the connection to replica ${target.label}`);
        return;
      }
      if (target.state === ConnectivityState.IDLE) target.exitIdle();
      this.watchConnect(target);
      this.publish();
    } else if (target === this.balancer && this.current() === this.balancer) {
      this.publish();
    }
  }

  /** Starts or stops the connect timer of the bound target as its state changes. */
  private watchConnect(target: Target): void {
    if (target.state === ConnectivityState.READY) {
      if (target.connectTimer !== null) clearTimeout(target.connectTimer);
      target.connectTimer = null;
      return;
    }
    if (target.connectTimer !== null) return;
    target.connectTimer = setTimeout(() => {
      target.connectTimer = null;
      if (target !== this.bound || target.state === ConnectivityState.READY) return;
      this.avoidFor(target.label);
      this.unbind(`replica ${target.label} not connected within ${this.config.connectTimeoutMs} ms`);
    }, this.config.connectTimeoutMs);
    target.connectTimer.unref?.();
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
    this.watchConnect(next);
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
    let destination = String(values[0]);
    const record = this.calls.get(callKey) ?? { hops: [from.label], failure: null };
    this.calls.set(callKey, record);
    const fromBalancer = from === this.balancer;
    if (fromBalancer) {
      // The balancer is the channel's own target: trust its forwards, and pin its key.
      const key = trailers.get(BALANCER_KEY_TRAILER)[0];
      if (key !== undefined) this.balancerKey = balancerKey(String(key)) ?? this.balancerKey;
      // And its group: replicas' forwards are followed only with vouchers for this group.
      this.group = voucherGroup(trailers.get(VOUCH_TRAILER)[0] as string | undefined) ?? this.group;
    } else if (destination !== FORWARD_TO_BALANCER && this.config.affinity === null) {
      // A replica may send us elsewhere only where the balancer vouched for.
      const vouched = checkVoucher(this.balancerKey, this.group, destination, trailers.get(VOUCH_TRAILER)[0] as string | undefined);
      if (vouched !== true) {
        emit('refused', from.label, destination.slice(0, 100), vouched, this.clientId);
        // That replica sent us somewhere the balancer never vouched for: do not go back to it.
        this.avoidFor(from.label);
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
    // A stale forward (the attempt was picked on a target the channel has left
    // since: a call that was in flight at a replica that drained, or a racing
    // first call the balancer answered after another bound the channel) says
    // nothing about the current binding: the call is re-sent, and picks it.
    if (from !== this.current()) return;
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

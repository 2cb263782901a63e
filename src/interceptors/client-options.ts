/**
 * The one thing a client adds to use rebind: channel options.
 *
 *     const client = new EchoClient(balancerAddress, grpc.credentials.createInsecure(), rebind.clientOptions());
 *
 * They name the "rebind" load-balancing policy, install a retry policy that
 * re-sends forwarded calls, and give the channel a client id (in its
 * user-agent) by which replicas report and move it. Call clientOptions()
 * once per client: each call makes a new client id.
 */
import type { ChannelOptions } from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { CLIENT_ID_PATTERN, clientUserAgent, parseAffinityToken, SETS_UA_TOKEN } from '../common/wire';
import { DEFAULT_MAX_FORWARDS, MAX_MAX_FORWARDS, POLICY_NAME, RebindLbConfig, registerRebindPolicy } from './client-policy';
import { idempotentMatcher, idempotentRetryInterceptor } from './idempotent-retry';

export interface ClientOptionsInput {
  /** Client id (8-64 base64url characters); random by default. */
  clientId?: string;
  /** Forwards one call may follow before it fails with UNAVAILABLE (1..8, default 4). */
  maxForwards?: number;
  /**
   * Affinity token of the replica that owns this channel's calls (from
   * `replica.affinity`, handed out by the application, e.g. with a session).
   * Every call goes to that replica; if it is gone the call fails with
   * FAILED_PRECONDITION. Use the same clientId as the channel that created
   * the session, so that its load counts as that client's.
   */
  affinity?: string;
  /**
   * Methods safe to re-send after a failure that may have reached the server
   * (the replica crashed mid-call, the connection dropped): "pkg.Service/Method",
   * or "pkg.Service" for all its methods. Other calls are re-sent only when
   * they provably never reached a replica (forwards, refused streams,
   * connection failures before sending), and otherwise fail with UNAVAILABLE.
   */
  idempotent?: string[];
  /**
   * Keepalive ping period while calls are in flight, ms (default 1000); a
   * replica that hangs (process stopped, socket open) fails its calls after
   * keepaliveTimeMs + keepaliveTimeoutMs, and the client re-binds.
   */
  keepaliveTimeMs?: number;
  /** How long a keepalive ping may go unanswered, ms (default 1000). */
  keepaliveTimeoutMs?: number;
  /** A bound replica not connected within this long is given up for another, ms (default 1000). */
  connectTimeoutMs?: number;
  /**
   * A one-member binding is given up (the channel asks the balancer for a
   * binding avoiding that replica; the call that found it goes there, calls
   * in flight stay) when a new call finds this channel's calls in flight on
   * it at or above max(stallInFlightFloor, stallFactor x baseline), the
   * baseline being the channel's usual calls in flight (an average over
   * call starts of the last ~5 s). `stallInFlight`, when set, caps that
   * bound: calls, 1..100000; default none (the adaptive bound alone).
   */
  stallInFlight?: number;
  /** Floor of the adaptive stall bound, calls in flight (1..100000, default 16). */
  stallInFlightFloor?: number;
  /** Factor of the adaptive stall bound over the channel's baseline in flight (2..1000, default 4). */
  stallFactor?: number;
  /**
   * A one-member binding whose calls are in flight with none completing for
   * this long is given up the same way, ms; 0 (default) turns it off. A call
   * that stays open longer (a long stream) with no other call completing
   * counts as waiting: use it for clients of short calls only.
   */
  stallTimeoutMs?: number;
  /** Further channel options to merge in. */
  channelOptions?: ChannelOptions;
}

const METHOD_NAME = /^([A-Za-z_][A-Za-z0-9_.]*)(?:\/([A-Za-z_][A-Za-z0-9_]*))?$/;

function retryPolicy(maxAttempts: number, codes: string[]) {
  return { maxAttempts, initialBackoff: '0.01s', maxBackoff: '0.2s', backoffMultiplier: 2, retryableStatusCodes: codes };
}

export const DEFAULT_KEEPALIVE_TIME_MS = 1000;
export const DEFAULT_KEEPALIVE_TIMEOUT_MS = 1000;

/** Channel options that make a grpc-js client rebind-aware. */
export function clientOptions(input: ClientOptionsInput = {}): ChannelOptions {
  registerRebindPolicy();
  const clientId = input.clientId ?? randomBytes(12).toString('base64url');
  if (!CLIENT_ID_PATTERN.test(clientId)) throw new Error('rebind clientOptions: clientId must be 8-64 characters of A-Z a-z 0-9 _ -');
  const maxForwards = input.maxForwards ?? DEFAULT_MAX_FORWARDS;
  if (input.affinity !== undefined) {
    const parsed = parseAffinityToken(input.affinity);
    if (typeof parsed === 'string') throw new Error(`rebind clientOptions: ${parsed}`);
  }
  if (!Number.isInteger(maxForwards) || maxForwards < 1 || maxForwards > MAX_MAX_FORWARDS) {
    throw new Error(`rebind clientOptions: maxForwards must be an integer 1..${MAX_MAX_FORWARDS}`);
  }
  // One attempt per forward, one for the final call, one spare so that the
  // attempt after the last allowed forward can fail with a clear message.
  const maxAttempts = maxForwards + 2;
  const idempotent = (input.idempotent ?? []).map((name) => {
    const match = METHOD_NAME.exec(name.replace(/^\//, ''));
    if (match === null) throw new Error(`rebind clientOptions: idempotent entry "${name}" is not "pkg.Service/Method" or "pkg.Service"`);
    return match[2] !== undefined ? { service: match[1]!, method: match[2] } : { service: match[1]! };
  });
  const keepaliveTimeMs = input.keepaliveTimeMs ?? DEFAULT_KEEPALIVE_TIME_MS;
  const keepaliveTimeoutMs = input.keepaliveTimeoutMs ?? DEFAULT_KEEPALIVE_TIMEOUT_MS;
  const serviceConfig = {
    loadBalancingConfig: [
      {
        [POLICY_NAME]: {
          maxForwards,
          ...(input.connectTimeoutMs !== undefined ? { connectTimeoutMs: input.connectTimeoutMs } : {}),
          ...(input.stallInFlight !== undefined ? { stallInFlight: input.stallInFlight } : {}),
          ...(input.stallTimeoutMs !== undefined ? { stallTimeoutMs: input.stallTimeoutMs } : {}),
          ...(input.stallInFlightFloor !== undefined ? { stallInFlightFloor: input.stallInFlightFloor } : {}),
          ...(input.stallFactor !== undefined ? { stallFactor: input.stallFactor } : {}),
          ...(input.affinity !== undefined ? { affinity: input.affinity } : {}),
        },
      },
    ],
    methodConfig: [
      // Forwards (ABORTED) are always re-sent: they were decided before any handler ran.
      { name: [{}], retryPolicy: retryPolicy(maxAttempts, ['ABORTED']) },
      // Idempotent methods also survive a replica that failed mid-call (UNAVAILABLE).
      ...(idempotent.length > 0 ? [{ name: idempotent, retryPolicy: retryPolicy(maxAttempts, ['ABORTED', 'UNAVAILABLE']) }] : []),
    ],
  };
  // Checked here, so that a bad value fails clientOptions() (naming the field and its range) rather than the channel later.
  try {
    RebindLbConfig.createFromJson(serviceConfig.loadBalancingConfig[0]![POLICY_NAME]);
  } catch (err) {
    throw new Error(`rebind clientOptions: ${(err as Error).message.replace(/^rebind config /, '')}`);
  }
  return {
    ...input.channelOptions,
    // A client option (grpc-js reads it from the same options object as the channel's):
    // replays idempotent calls that gRPC's retry had to give up once response headers arrived.
    ...(idempotent.length > 0 ? { interceptors: [idempotentRetryInterceptor(idempotentMatcher(idempotent))] } : {}),
    'grpc.keepalive_time_ms': keepaliveTimeMs,
    'grpc.keepalive_timeout_ms': keepaliveTimeoutMs,
    // rebind-sets/1: this client understands weighted-set bindings (rebind-binding).
    'grpc.secondary_user_agent': `${clientUserAgent(clientId)} ${SETS_UA_TOKEN}`,
    'grpc.service_config': JSON.stringify(serviceConfig),
    'grpc.service_config_disable_resolution': 1,
    'grpc.enable_retries': 1,
    'grpc-node.retry_max_attempts_limit': maxAttempts,
  };
}

/** The client id in a set of rebind channel options. */
export function clientIdOf(options: ChannelOptions): string | null {
  const ua = options['grpc.secondary_user_agent'];
  if (typeof ua !== 'string') return null;
  const match = /rebind-cid\/([A-Za-z0-9_-]+)/.exec(ua);
  return match?.[1] ?? null;
}

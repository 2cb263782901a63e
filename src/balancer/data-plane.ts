/**
 * The balancer's data port: the address clients target. It speaks gRPC's
 * HTTP/2 protocol directly on rebind's own HTTP/2 transport (src/h2: a
 * bind costs one pre-encoded HEADERS frame) and, for each call:
 *   - answers a rebind-aware client in a per-session or on-demand group with
 *     a forward: a Trailers-Only response naming the chosen replica
 *     (rebind's LOCATION_FORWARD; see ../common/wire.ts), or
 *   - proxies the call to a replica chosen by the group's strategy, for
 *     plain gRPC clients and for every client of a per-request group.
 * It needs no copy of the application's .proto files: replicas advertise the
 * method paths they serve when they attach.
 */
import { status as Status } from '@grpc/grpc-js';
import { createH2Server, ErrorCode, type EncodedHeaders, type H2Connection, type H2Counters, type H2Server, type H2Stream } from '../h2';
import { formatHostPort, parseListenAddress } from '../common/address';
import type { Logger } from '../common/logger';
import { WarnLimiter } from '../common/warn-limiter';
import { respondPrepared, respondTrailersOnly, trailersOnly } from '../common/grpc-http2';
import { ABUSE_WINDOW_MS, AbusiveConnections, DEFAULT_MAX_REFUSALS_PER_CONNECTION } from '../common/abusive-connections';
import {
  AFFINITY_HEADER,
  BINDING_TRAILER,
  heaviestMember,
  AVOID_HEADER,
  parseAvoid,
  FORWARD_REASON_TRAILER,
  FORWARD_STATUS,
  FORWARD_TRAILER,
  PROXIED_HEADER,
  RETRY_PUSHBACK_TRAILER,
  BALANCER_KEY_TRAILER,
  BALANCER_KEYS_TRAILER,
  VOUCH_TRAILER,
  identifyCaller,
  parseAffinityToken,
} from '../common/wire';
import { canonicalAddress } from '../common/address';
import { builtinLimits, builtinProxy, type LimitsConfig, type ProxyConfig } from './config';
import type { Group } from './group';
import type { Member } from './member';
import { VOUCH_MARGIN_MS, type Voucher } from './vouch';
import type { Registry } from './registry';
import { proxyStream, UpstreamPool, type ProxyOutcome } from './proxy';

/**
 * The forward a bind to one member answers with, built once and reused
 * while its voucher (renewed every half validity) and the key ring stay the
 * same: every bind to that member says the same, so it costs no header
 * object, no message encoding and no string per bind.
 */
interface PreparedForward {
  readonly address: string;
  readonly voucher: string;
  readonly publicKey: string;
  readonly publicKeys: string;
  /** The Trailers-Only response, HPACK-encoded once. */
  readonly block: EncodedHeaders;
}

/** Every value of a request header, joined with ", " as node:http2 joined repeated fields (undefined when absent). */
function joinedHeader(stream: H2Stream, name: string): string | undefined {
  const raw = stream.rawHeaders;
  let out: string | undefined;
  for (let i = 0; i < raw.length; i += 2) if (raw[i] === name) out = out === undefined ? raw[i + 1]! : `${out}, ${raw[i + 1]!}`;
  return out;
}

/** Refusals a caller brings on itself (not, say, a group with no member): they count against its connection. */
const CALLER_FAULTS = new Set(['unknown_method', 'bad_affinity', 'proxy_caller_limit']);

/** Gives back what a proxied call held when it ends: its member's and its caller's in-flight counts. */
class ProxiedCallAccount implements ProxyOutcome {
  constructor(
    private readonly byCaller: Map<string, number>,
    private readonly member: Member,
    private readonly caller: string,
  ) {}

  done(): void {
    this.member.proxiedInFlight--;
    const left = (this.byCaller.get(this.caller) ?? 1) - 1;
    if (left > 0) this.byCaller.set(this.caller, left);
    else this.byCaller.delete(this.caller);
  }
}

export interface DataPlaneEvents {
  forwarded?(group: string, clientId: string | null, address: string): void;
  proxied?(group: string, address: string): void;
  refused?(reason: string): void;
}

/** The data port's bounds on client connections (see README "Limits and defences"). */
export type DataPortLimits = Pick<LimitsConfig, 'maxDataConnections' | 'maxStreamsPerDataConnection' | 'dataIdleTimeoutMs' | 'maxProxiedCallsPerCaller'>;

export interface DataPlaneOptions {
  limits?: Partial<DataPortLimits>;
  proxy?: Partial<ProxyConfig>;
}

/**
 * Closes a client connection that keeps getting refused: GOAWAY
 * ENHANCE_YOUR_CALM, on the next turn of the event loop (the refusal comes
 * from inside the connection's own frame processing, which goes on using
 * the stream being refused).
 */
function closeAbusive(connection: H2Connection): void {
  setImmediate(() => connection.closeWithError(ErrorCode.ENHANCE_YOUR_CALM, 'too many refused calls'));
}

export class DataPlane {
  private server: H2Server | null = null;
  readonly upstreams: UpstreamPool;
  private readonly limits: DataPortLimits;
  /**
   * Proxied calls in flight per caller (remote address of the client
   * connection). An entry exists only while its caller has a call in flight,
   * so the map is bounded by the calls the data port holds.
   */
  private readonly proxiedByCaller = new Map<string, number>();
  private readonly abusive = new AbusiveConnections<H2Connection>(DEFAULT_MAX_REFUSALS_PER_CONNECTION, ABUSE_WINDOW_MS, undefined, closeAbusive);
  /** Warn lines for refused connections, at most one per reason per second. */
  private readonly warnLimited: WarnLimiter;
  /** Each member's prepared forward (see {@link PreparedForward}); goes with the member. */
  private readonly forwards = new WeakMap<Member, PreparedForward>();

  constructor(
    private readonly registry: Registry,
    private readonly log: Logger,
    private readonly voucher: Voucher,
    private readonly events: DataPlaneEvents = {},
    private readonly now: () => number = Date.now,
    /** TLS for replicas (the CA they chain to), or null for plaintext. */
    upstreamCa: Buffer | null = null,
    options: DataPlaneOptions = {},
  ) {
    const { maxDataConnections, maxStreamsPerDataConnection, dataIdleTimeoutMs, maxProxiedCallsPerCaller } = builtinLimits();
    this.limits = { maxDataConnections, maxStreamsPerDataConnection, dataIdleTimeoutMs, maxProxiedCallsPerCaller, ...options.limits };
    this.warnLimited = new WarnLimiter(log);
    this.upstreams = new UpstreamPool(log, upstreamCa, { ...builtinProxy(), ...options.proxy });
    registry.listen({ memberRemoved: (_group, member) => this.upstreams.release(member.address) });
  }

  /**
   * Starts listening (TLS when `tls` is given; `requireClientCert` verifies
   * client certificates against `ca` in the handshake); resolves with the
   * bound address (port 0 picks one).
   */
  async listen(address: string, tls: { cert: Buffer; key: Buffer; ca: Buffer | null; requireClientCert: boolean } | null = null): Promise<string> {
    const parsed = parseListenAddress(address);
    if (typeof parsed === 'string') throw new Error(`listen address: ${parsed}`);
    const server = createH2Server(
      {
        // A client may hold this many calls open per connection (SETTINGS_MAX_CONCURRENT_STREAMS).
        maxConcurrentStreams: this.limits.maxStreamsPerDataConnection,
        // A connection with no open stream for this long is closed with GOAWAY (an idle
        // connection costs memory and a slot under maxDataConnections; clients reconnect).
        idleTimeoutMs: this.limits.dataIdleTimeoutMs,
        onConnection: this.onConnection,
        ...(tls === null
          ? {}
          : {
              tls: {
                cert: tls.cert,
                key: tls.key,
                ...(tls.ca !== null ? { ca: tls.ca } : {}),
                requestCert: tls.requireClientCert,
                rejectUnauthorized: tls.requireClientCert,
              },
            }),
      },
      this.onStream,
    );
    // Connections beyond the cap are closed at accept, before any TLS or HTTP/2 work.
    server.server.maxConnections = this.limits.maxDataConnections;
    server.server.on('drop', (drop) => {
      this.events.refused?.('data_connection_limit');
      this.warnLimited.warn(
        'data_connection_limit',
        { peer: drop?.remoteAddress, limit: this.limits.maxDataConnections },
        `refused a client connection: the data port holds limits.maxDataConnections (${this.limits.maxDataConnections}) connections already`,
      );
    });
    server.server.on('tlsClientError', (err: Error) => this.log.debug({ err: err.message }, 'client TLS handshake failed'));
    const bound = await server.listen(parsed.port, parsed.host);
    server.server.on('error', (err) => this.log.error({ err: err.message }, 'data port error'));
    this.server = server;
    return formatHostPort(parsed.host, bound.port);
  }

  /** The data port's HTTP/2 transport counters (refused streams, rapid resets, floods, …); null before listen(). */
  h2Counters(): H2Counters | null {
    return this.server?.counters ?? null;
  }

  /** Client connections open on the data port. */
  get connections(): number {
    return this.server?.connections.size ?? 0;
  }

  private readonly onConnection = (connection: H2Connection): void => {
    connection.onIdleTimeout = this.onIdleTimeout;
  };

  private readonly onIdleTimeout = (): void => {
    this.events.refused?.('data_idle_timeout');
    this.log.debug({ idleMs: this.limits.dataIdleTimeoutMs }, 'closing a client connection idle for limits.dataIdleTimeoutMs');
  };

  /**
   * Refuses a proxied call whose replica has `upstreams.limitPerReplica`
   * calls in flight already; true when refused.
   */
  private atLimit(stream: H2Stream, member: Member): boolean {
    const inFlight = this.upstreams.inFlight(member.address);
    if (inFlight < this.upstreams.limitPerReplica) return false;
    this.refuse(stream, 'proxy_replica_limit', Status.RESOURCE_EXHAUSTED, `rebind: replica ${member.address} has ${inFlight} proxied calls in flight (limit ${this.upstreams.limitText})`);
    return true;
  }

  /**
   * Refuses a proxied call of a caller that has limits.maxProxiedCallsPerCaller
   * in flight already (so that one party holding calls open cannot take every
   * replica's proxied-call capacity from the others); true when refused.
   */
  private callerAtLimit(stream: H2Stream, caller: string): boolean {
    const inFlight = this.proxiedByCaller.get(caller) ?? 0;
    if (inFlight < this.limits.maxProxiedCallsPerCaller) return false;
    this.refuse(
      stream,
      'proxy_caller_limit',
      Status.RESOURCE_EXHAUSTED,
      `rebind: this client address has ${inFlight} proxied calls in flight (limit limits.maxProxiedCallsPerCaller=${this.limits.maxProxiedCallsPerCaller})`,
    );
    return true;
  }

  /** Relays one call to `member`, counted for its group, the member and the caller. */
  private proxy(stream: H2Stream, group: Group, member: Member, caller: string): void {
    if (this.atLimit(stream, member)) return;
    group.counters.proxiedCalls++;
    member.proxiedInFlight++;
    this.proxiedByCaller.set(caller, (this.proxiedByCaller.get(caller) ?? 0) + 1);
    this.events.proxied?.(group.name, member.address);
    proxyStream(this.upstreams, stream, member.address, new ProxiedCallAccount(this.proxiedByCaller, member, caller), member.proxySecret);
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = null;
    this.upstreams.close();
    if (server === null) return;
    const closed = new Promise<void>((resolve) => server.server.close(() => resolve()));
    for (const connection of [...server.connections]) connection.destroy();
    await closed;
  }

  private refuse(stream: H2Stream, reason: string, code: Status, message: string): void {
    this.events.refused?.(reason);
    this.log.debug({ reason }, message);
    respondTrailersOnly(stream, code, message);
    // Refusals the caller brought on itself count against its connection.
    if (CALLER_FAULTS.has(reason) && this.abusive.refused(stream.connection)) {
      this.events.refused?.('data_connection_abusive');
      this.warnLimited.warn('data_connection_abusive', { peer: stream.connection.remoteAddress, reason }, `closed a client connection: more than ${DEFAULT_MAX_REFUSALS_PER_CONNECTION} refused calls within ${ABUSE_WINDOW_MS} ms`);
    }
  }

  /** Handles one client stream (a bind, a refusal or a proxied call). */
  private readonly onStream = (stream: H2Stream): void => {
    const method = stream.method;
    const contentType = stream.header('content-type');
    if (method !== 'POST' || contentType === undefined || !contentType.startsWith('application/grpc')) {
      // Not gRPC (gRPC over HTTP/2 spec: 415 for a wrong content type).
      stream.respond({ ':status': method !== 'POST' ? 405 : 415 }, { endStream: true });
      this.events.refused?.('not_grpc');
      return;
    }
    const path = stream.path;
    const group = this.registry.route(path);
    if (group === undefined) {
      return this.refuse(stream, 'unknown_method', Status.UNIMPLEMENTED, `rebind: no replica group serves ${path.slice(0, 200)}`);
    }
    const affinity = stream.header(AFFINITY_HEADER);
    if (affinity !== undefined) return this.routeAffinity(stream, group, affinity);
    const caller = identifyCaller(stream.header('user-agent'));
    const proxiedMarker = stream.header(PROXIED_HEADER);
    const follows = caller.rebindAware && group.granularity !== 'per-request' && proxiedMarker === undefined;
    const avoid = joinedHeader(stream, AVOID_HEADER);
    const avoided = avoid === undefined ? undefined : parseAvoid(avoid);
    const remote = stream.connection.remoteAddress ?? '';
    if (caller.sets && group.granularity === 'per-request' && proxiedMarker === undefined) {
      // Per-request at direct-call cost: a client that understands weighted
      // bindings gets every member (of a shard) weighted by capacity, and
      // spreads its calls itself.
      const direct = group.directBinding(path, caller.clientId, this.now(), remote);
      if (group.lastCreditCapped) this.events.refused?.('pending_bind_credit_capped');
      if (direct !== null) {
        const target = heaviestMember(direct.members);
        group.counters.forwards++;
        this.events.forwarded?.(group.name, caller.clientId, target);
        respondTrailersOnly(stream, FORWARD_STATUS, `rebind: forward to ${direct.text.slice(0, 200)}`, {
          [FORWARD_TRAILER]: target,
          [BINDING_TRAILER]: direct.text,
          [FORWARD_REASON_TRAILER]: 'bind',
          [RETRY_PUSHBACK_TRAILER]: '0',
          [VOUCH_TRAILER]: this.voucher.vouch(group.name, direct.text, group.config.advisoryExpireMs + VOUCH_MARGIN_MS),
          [BALANCER_KEY_TRAILER]: this.voucher.publicKey,
          [BALANCER_KEYS_TRAILER]: this.voucher.publicKeysTrailer,
        });
        return;
      }
    }
    if (!follows && this.callerAtLimit(stream, remote)) return;
    let member = group.choose(path, follows ? 'bind' : 'call', caller.clientId, this.now(), avoided, remote);
    if (group.lastCreditCapped) this.events.refused?.('pending_bind_credit_capped');
    if (!follows && member !== null && this.upstreams.inFlight(member.address) >= this.upstreams.limitPerReplica) {
      // The choice is at its proxied-call limit: choose again among the members under it, if any.
      const full = new Set(avoided ?? []);
      for (const m of group.members.values()) {
        if (this.upstreams.inFlight(m.address) >= this.upstreams.limitPerReplica) full.add(canonicalAddress(m.address) ?? m.address);
      }
      member = group.choose(path, 'call', caller.clientId, this.now(), full);
    }
    if (member === null) {
      return this.refuse(stream, 'no_member', Status.UNAVAILABLE, `rebind: ${group.lastRefusal ?? `group "${group.name}" has no replica available`}`);
    }
    if (follows) {
      group.counters.forwards++;
      this.events.forwarded?.(group.name, caller.clientId, member.address);
      respondPrepared(stream, this.forwardTo(group, member));
      return;
    }
    this.proxy(stream, group, member, remote);
  };

  /** The forward to `member` (a bind), prepared again only when its voucher or the key ring changed. */
  private forwardTo(group: Group, member: Member): EncodedHeaders {
    const address = member.address;
    const voucher = this.voucher.vouch(group.name, address, group.config.advisoryExpireMs + VOUCH_MARGIN_MS);
    const publicKey = this.voucher.publicKey;
    const publicKeys = this.voucher.publicKeysTrailer;
    const cached = this.forwards.get(member);
    if (cached !== undefined && cached.voucher === voucher && cached.address === address && cached.publicKey === publicKey && cached.publicKeys === publicKeys) return cached.block;
    const block = trailersOnly(FORWARD_STATUS, `rebind: forward to ${address}`, {
      [FORWARD_TRAILER]: address,
      [FORWARD_REASON_TRAILER]: 'bind',
      [RETRY_PUSHBACK_TRAILER]: '0',
      [VOUCH_TRAILER]: voucher,
      [BALANCER_KEY_TRAILER]: publicKey,
      [BALANCER_KEYS_TRAILER]: publicKeys,
    });
    this.forwards.set(member, { address, voucher, publicKey, publicKeys, block });
    return block;
  }

  /**
   * A call pinned to the replica that owns its state: proxied to that
   * replica whatever the granularity, or refused with FAILED_PRECONDITION
   * when the owner is no longer attached (its state is gone with it).
   */
  private routeAffinity(stream: H2Stream, group: Group, token: string): void {
    const parsed = parseAffinityToken(token);
    if (typeof parsed === 'string') {
      return this.refuse(stream, 'bad_affinity', Status.INVALID_ARGUMENT, `rebind: malformed ${AFFINITY_HEADER} header: ${parsed}`);
    }
    const owner = group.ownerOf(parsed.address, parsed.replicaId);
    if (owner === null) {
      return this.refuse(
        stream,
        'affinity_owner_gone',
        Status.FAILED_PRECONDITION,
        `rebind: the replica that owns this call (${parsed.address}, replica ${parsed.replicaId}) is gone: it is no longer attached to group "${group.name}"`,
      );
    }
    const caller = stream.connection.remoteAddress ?? '';
    if (this.callerAtLimit(stream, caller)) return;
    this.proxy(stream, group, owner, caller);
  }
}

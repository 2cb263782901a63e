/**
 * The balancer's data port: the address clients target. It speaks gRPC's
 * HTTP/2 protocol directly (node:http2) and, for each call:
 *   - answers a rebind-aware client in a per-session or on-demand group with
 *     a forward: a Trailers-Only response naming the chosen replica
 *     (rebind's LOCATION_FORWARD; see ../common/wire.ts), or
 *   - proxies the call to a replica chosen by the group's strategy, for
 *     plain gRPC clients and for every client of a per-request group.
 * It needs no copy of the application's .proto files: replicas advertise the
 * method paths they serve when they attach.
 */
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { status as Status } from '@grpc/grpc-js';
import { formatHostPort, parseListenAddress } from '../common/address';
import type { Logger } from '../common/logger';
import { WarnLimiter } from '../common/warn-limiter';
import { respondPrepared, respondTrailersOnly, trailersOnlyHeaders } from '../common/grpc-http2';
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
  readonly headers: Readonly<http2.OutgoingHttpHeaders>;
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

export class DataPlane {
  private server: http2.Http2Server | http2.Http2SecureServer | null = null;
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  readonly upstreams: UpstreamPool;
  private readonly limits: DataPortLimits;
  /**
   * Proxied calls in flight per caller (remote address of the client
   * connection). An entry exists only while its caller has a call in flight,
   * so the map is bounded by the calls the data port holds.
   */
  private readonly proxiedByCaller = new Map<string, number>();
  private readonly abusive = new AbusiveConnections();
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

  /** Starts listening (TLS when `tls` is given); resolves with the bound address (port 0 picks one). */
  async listen(address: string, tls: { cert: Buffer; key: Buffer; ca: Buffer | null; requireClientCert: boolean } | null = null): Promise<string> {
    const parsed = parseListenAddress(address);
    if (typeof parsed === 'string') throw new Error(`listen address: ${parsed}`);
    const port = parsed.port;
    // A client may hold this many calls open per connection (SETTINGS_MAX_CONCURRENT_STREAMS).
    const settings: http2.Settings = { enablePush: false, maxConcurrentStreams: this.limits.maxStreamsPerDataConnection };
    const server: http2.Http2Server | http2.Http2SecureServer =
      tls === null
        ? http2.createServer({ settings })
        : http2.createSecureServer({
            settings,
            cert: tls.cert,
            key: tls.key,
            ...(tls.ca !== null ? { ca: tls.ca } : {}),
            requestCert: tls.requireClientCert,
            rejectUnauthorized: tls.requireClientCert,
            ALPNProtocols: ['h2'],
          });
    server.on('stream', (stream, headers) => this.onStream(stream, headers));
    // Connections beyond the cap are closed at accept, before any TLS or HTTP/2 work.
    server.maxConnections = this.limits.maxDataConnections;
    server.on('drop', (drop) => {
      this.events.refused?.('data_connection_limit');
      this.warnLimited.warn(
        'data_connection_limit',
        { peer: drop?.remoteAddress, limit: this.limits.maxDataConnections },
        `refused a client connection: the data port holds limits.maxDataConnections (${this.limits.maxDataConnections}) connections already`,
      );
    });
    server.on('session', (session) => this.watchSession(session));
    server.on('sessionError', (err) => this.log.debug({ err: err.message }, 'client session error'));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, parsed.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.log.error({ err: err.message }, 'data port error'));
    this.server = server;
    const bound = server.address() as AddressInfo;
    return formatHostPort(parsed.host, bound.port);
  }

  /**
   * Tracks a client connection: a connection with no open stream for
   * `dataIdleTimeoutMs` is closed with GOAWAY (an idle connection costs
   * memory and a slot under maxDataConnections; clients reconnect).
   */
  private watchSession(session: http2.ServerHttp2Session): void {
    this.sessions.add(session);
    let open = 0;
    const idleMs = this.limits.dataIdleTimeoutMs;
    // One timer per connection, restarted (refresh: no new timer) each time its last open stream
    // closes; when it fires with a stream open it does nothing, and that stream's close restarts it.
    // (A clearTimeout and a setTimeout per call cost a timer object and two timer-list updates per bind.)
    const idleTimer = setTimeout(() => {
      if (open > 0 || session.closed || session.destroyed) return;
      this.events.refused?.('data_idle_timeout');
      this.log.debug({ idleMs }, 'closing a client connection idle for limits.dataIdleTimeoutMs');
      session.close();
    }, idleMs);
    idleTimer.unref();
    const disarm = () => clearTimeout(idleTimer);
    session.on('stream', (stream) => {
      open++;
      stream.once('close', () => {
        open--;
        if (open === 0 && !session.closed && !session.destroyed) idleTimer.refresh();
      });
    });
    session.on('close', () => {
      disarm();
      this.sessions.delete(session);
    });
    session.on('error', (err) => this.log.debug({ err: err.message }, 'client connection error'));
  }

  /**
   * Refuses a proxied call whose replica has `upstreams.limitPerReplica`
   * calls in flight already; true when refused.
   */
  private atLimit(stream: http2.ServerHttp2Stream, member: Member): boolean {
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
  private callerAtLimit(stream: http2.ServerHttp2Stream, caller: string): boolean {
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
  private proxy(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, group: Group, member: Member, caller: string): void {
    if (this.atLimit(stream, member)) return;
    group.counters.proxiedCalls++;
    member.proxiedInFlight++;
    this.proxiedByCaller.set(caller, (this.proxiedByCaller.get(caller) ?? 0) + 1);
    this.events.proxied?.(group.name, member.address);
    proxyStream(this.upstreams, stream, headers, member.address, new ProxiedCallAccount(this.proxiedByCaller, member, caller), member.proxySecret);
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = null;
    this.upstreams.close();
    if (server === null) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const session of this.sessions) session.destroy();
    await closed;
  }

  private refuse(stream: http2.ServerHttp2Stream, reason: string, code: Status, message: string): void {
    this.events.refused?.(reason);
    this.log.debug({ reason }, message);
    respondTrailersOnly(stream, code, message);
    // Refusals the caller brought on itself count against its connection.
    if (CALLER_FAULTS.has(reason) && this.abusive.refused(stream.session)) {
      this.events.refused?.('data_connection_abusive');
      this.warnLimited.warn('data_connection_abusive', { peer: stream.session?.socket?.remoteAddress, reason }, `closed a client connection: more than ${DEFAULT_MAX_REFUSALS_PER_CONNECTION} refused calls within ${ABUSE_WINDOW_MS} ms`);
    }
  }

  /** One listener for every client stream's errors (not a closure per call). */
  private readonly onClientStreamError = (err: Error): void => this.log.debug({ err: err.message }, 'client stream error');

  private onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    stream.on('error', this.onClientStreamError);
    const method = headers[':method'];
    const contentType = headers['content-type'];
    if (method !== 'POST' || typeof contentType !== 'string' || !contentType.startsWith('application/grpc')) {
      // Not gRPC (gRPC over HTTP/2 spec: 415 for a wrong content type).
      stream.respond({ ':status': method !== 'POST' ? 405 : 415 }, { endStream: true });
      this.events.refused?.('not_grpc');
      return;
    }
    const path = headers[':path'] ?? '';
    const group = this.registry.route(path);
    if (group === undefined) {
      return this.refuse(stream, 'unknown_method', Status.UNIMPLEMENTED, `rebind: no replica group serves ${path.slice(0, 200)}`);
    }
    const affinity = headers[AFFINITY_HEADER];
    if (affinity !== undefined) return this.routeAffinity(stream, headers, group, String(affinity));
    const caller = identifyCaller(headers['user-agent'] as string | undefined);
    const follows = caller.rebindAware && group.granularity !== 'per-request' && headers[PROXIED_HEADER] === undefined;
    const avoid = headers[AVOID_HEADER];
    const avoided = avoid === undefined ? undefined : parseAvoid(avoid);
    const remote = stream.session?.socket?.remoteAddress ?? '';
    if (caller.sets && group.granularity === 'per-request' && headers[PROXIED_HEADER] === undefined) {
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
    this.proxy(stream, headers, group, member, remote);
  }

  /** The forward to `member` (a bind), prepared again only when its voucher or the key ring changed. */
  private forwardTo(group: Group, member: Member): Readonly<http2.OutgoingHttpHeaders> {
    const address = member.address;
    const voucher = this.voucher.vouch(group.name, address, group.config.advisoryExpireMs + VOUCH_MARGIN_MS);
    const publicKey = this.voucher.publicKey;
    const publicKeys = this.voucher.publicKeysTrailer;
    const cached = this.forwards.get(member);
    if (cached !== undefined && cached.voucher === voucher && cached.address === address && cached.publicKey === publicKey && cached.publicKeys === publicKeys) return cached.headers;
    const headers = trailersOnlyHeaders(FORWARD_STATUS, `rebind: forward to ${address}`, {
      [FORWARD_TRAILER]: address,
      [FORWARD_REASON_TRAILER]: 'bind',
      [RETRY_PUSHBACK_TRAILER]: '0',
      [VOUCH_TRAILER]: voucher,
      [BALANCER_KEY_TRAILER]: publicKey,
      [BALANCER_KEYS_TRAILER]: publicKeys,
    });
    this.forwards.set(member, { address, voucher, publicKey, publicKeys, headers });
    return headers;
  }

  /**
   * A call pinned to the replica that owns its state: proxied to that
   * replica whatever the granularity, or refused with FAILED_PRECONDITION
   * when the owner is no longer attached (its state is gone with it).
   */
  private routeAffinity(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, group: Group, token: string): void {
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
    const caller = stream.session?.socket?.remoteAddress ?? '';
    if (this.callerAtLimit(stream, caller)) return;
    this.proxy(stream, headers, group, owner, caller);
  }
}

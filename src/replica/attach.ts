/**
 * What a replica calls once at start-up:
 *
 *     const replica = await attach(server, { balancer: '127.0.0.1:50052', group: 'echo', address: '127.0.0.1:6001' });
 *     ...
 *     await replica.detach();
 *
 * attach() installs rebind's server interceptor on the grpc.Server (the
 * service implementations are untouched), opens the control stream to the
 * balancer, says Hello (group, address, the methods the server serves), then
 * pushes a load report every report interval and applies the advisories
 * the balancer sends back. If the balancer goes away it reconnects with
 * jittered exponential backoff and attaches again. The periodic loops are
 * rxjs pipelines on an injectable scheduler. Shutting the server down
 * (tryShutdown or forceShutdown) detaches it first.
 */
import * as grpc from '@grpc/grpc-js';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import {
  BehaviorSubject,
  Observable,
  Subscription,
  asyncScheduler,
  defer,
  firstValueFrom,
  filter,
  interval,
  retry,
  throwError,
  timer,
  type SchedulerLike,
} from 'rxjs';
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { formatHostPort, parseHostPort } from '../common/address';
import { balancerListProblem, MAX_BALANCERS } from '../common/balancers';
import { moduleLogger, type Logger } from '../common/logger';
import { controlProto } from '../common/proto';
import { affinityToken, PROTOCOL_VERSION } from '../common/wire';
import { tokenMetadata } from '../balancer/auth';
import type { BalancerMessage__Output } from '../generated/rebind/v1/BalancerMessage';
import type { ControlClient } from '../generated/rebind/v1/Control';
import type { Method } from '../generated/rebind/v1/Method';
import type { ReplicaMessage } from '../generated/rebind/v1/ReplicaMessage';
import { createServerInterceptor, REBIND_INTERCEPTOR } from '../interceptors/server-interceptor';
import { sanitizeAdvisory } from './advisory';
import { ORCA_SERVICE_PATH, orcaHandlers, orcaServiceDefinition, orcaSettings, type OrcaOptions } from './orca';
import { ForwardTable } from './forward-table';
import { LoadMeter, type LoadSnapshot } from './load-meter';
import { RefusalCounter } from './refusals';

/** Reconnection backoff after the control stream fails. */
export interface BackoffOptions {
  /** First delay, ms. */
  initialMs: number;
  /** Upper bound on the delay, ms. */
  maxMs: number;
  multiplier: number;
  /** Each delay is multiplied by a random factor in [1 − jitter, 1 + jitter]. */
  jitter: number;
}

/**
 * Re-attach backoff. The cap is short (1 s) so that a restarted balancer has
 * its members back within about one report interval.
 */
export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 100, maxMs: 1000, multiplier: 2, jitter: 0.2 };

/** Longest report interval a balancer may ask for (its configuration's upper bound), ms. */
const MAX_REPORT_INTERVAL_MS = 600_000;
/** Most busiest clients a balancer may ask a report to list (its validation's upper bound). */
const MAX_TOP_CLIENTS = 10_000;

/** How long tryShutdown() lets calls in flight finish before it detaches anyway, ms. */
export const SHUTDOWN_DRAIN_TIMEOUT_MS = 10_000;

export interface AttachOptions {
  /**
   * The balancer's control address, host:port; or several balancers (an HA
   * set): a list of addresses, or one DNS name that resolves to several
   * (each address is a balancer). At most MAX_BALANCERS (16). The replica
   * joins the group on each, over one control stream per balancer.
   */
  balancer: string | readonly string[];
  /** Replica group to join. */
  group: string;
  /** host:port at which clients reach this replica. */
  address: string;
  /** Credentials for the control channel (default: insecure). */
  credentials?: grpc.ChannelCredentials;
  /** Stable replica id (default: random per process). */
  replicaId?: string;
  /**
   * Methods to advertise (default: every method registered on the server,
   * except those of `excludeServices`).
   */
  methods?: Method[];
  /**
   * Services (full names, e.g. "grpc.health.v1.Health") whose methods are not
   * advertised when `methods` is not given (default INFRASTRUCTURE_SERVICES).
   * Replaces the default list; [] advertises every service. rebind's own ORCA
   * service is never advertised.
   */
  excludeServices?: readonly string[];
  /**
   * Distinct clients whose calls the load meter tracks per report interval,
   * clients (default DEFAULT_MAX_TRACKED_CLIENTS, 1-1000000). Calls of
   * further clients are reported as unattributed (`otherCallsPerS`) and
   * counted as refusals (`meter_clients_untracked`).
   */
  maxTrackedClients?: number;
  /** Application-defined load, for groups whose metric is "custom". */
  loadCallback?: () => number;
  /** The balancer's replica token (security.replicaToken), sent as "authorization: Bearer <token>". */
  token?: string;
  /**
   * Serve ORCA out-of-band load reports (OpenRcaService), so that standard
   * gRPC clients (grpc-js weighted_round_robin) can balance over this replica
   * too (default true). An object enables it with other bounds:
   * `{ maxStreams, blockedTimeoutMs }` (see OrcaOptions).
   */
  orca?: boolean | OrcaOptions;
  /** Wait until the first attachment succeeds (default true). */
  waitForAttach?: boolean;
  backoff?: Partial<BackoffOptions>;
  scheduler?: SchedulerLike;
  logger?: Logger;
  random?: () => number;
}

export type ReplicaState = 'connecting' | 'attached' | 'detached';

/** Handle on an attached replica. */
export interface Replica {
  /** Member id the balancer assigned (changes after a re-attach); with several balancers, the first attached one's (see `balancers`). */
  readonly memberId: string | null;
  readonly state: ReplicaState;
  readonly state$: Observable<ReplicaState>;
  readonly meter: LoadMeter;
  readonly forwards: ForwardTable;
  /** Number of successful attachments so far, to all balancers together (1 + re-attachments for one balancer). */
  readonly attachments: number;
  /** Each balancer's stream: its address, state, member id, attachments and last error (one entry per balancer). */
  readonly balancers: readonly BalancerLinkStatus[];
  /**
   * This replica's affinity token: hand it to clients whose later calls must
   * reach this replica (a session it created); they pass it to
   * clientOptions({ affinity }).
   */
  readonly affinity: string;
  readonly replicaId: string;
  /**
   * Input this replica refused, by reason: `orca_streams` (an ORCA stream
   * beyond orca.maxStreams), `orca_report_skipped` (an ORCA report not sent
   * because the stream's previous one is still buffered), `orca_stream_blocked` (an ORCA stream reset
   * because its client took no report for orca.blockedTimeoutMs),
   * `meter_clients_untracked` (a call of a client beyond maxTrackedClients),
   * `bad_proxied_marker` (a call carried a rebind-proxied header that is not
   * the balancer's: a client trying to escape forwards).
   */
  readonly refusals: ReadonlyMap<string, number>;
  /** Tells the balancer this replica leaves, stops reporting. */
  detach(reason?: string): Promise<void>;
  /**
   * Graceful drain: tells the balancer at once (a draining report: it hands
   * this replica to no new client), answers rebind clients' new calls with a
   * forward back to the balancer, waits for the calls in flight to finish
   * (at most `timeoutMs`, default 30 000 ms), then detaches with `reason`
   * (default "drained"). Resolves with the calls still in flight when it
   * gave up (0 normally).
   */
  drain(options?: { timeoutMs?: number; reason?: string }): Promise<{ inFlightLeft: number }>;
}

/** Status codes that mean "this attach will never succeed as configured". */
const PERMANENT = new Set<number>([
  grpc.status.INVALID_ARGUMENT,
  grpc.status.NOT_FOUND,
  grpc.status.FAILED_PRECONDITION,
  grpc.status.UNAUTHENTICATED,
  grpc.status.PERMISSION_DENIED,
  grpc.status.UNIMPLEMENTED,
]);

const KIND_BY_HANDLER_TYPE: Record<string, Method['kind']> = {
  unary: 'UNARY',
  serverStream: 'SERVER_STREAMING',
  clientStream: 'CLIENT_STREAMING',
  bidi: 'BIDI_STREAMING',
};

interface ServerInternals {
  interceptors?: grpc.ServerInterceptor[];
  handlers?: Map<string, { type: string }>;
}

/**
 * Standard services a server registers beside its application, which
 * serverMethods() leaves out by default: a method path belongs to one group
 * on a balancer, so if replicas advertised these, two groups whose servers
 * both serve (say) health checking could not share a balancer. Full service
 * names: health checking, server reflection (v1 and v1alpha), ORCA load
 * reports, channelz, and the admin interface's CSDS (v2 and v3).
 */
export const INFRASTRUCTURE_SERVICES: readonly string[] = Object.freeze([
  'grpc.health.v1.Health',
  'grpc.reflection.v1.ServerReflection',
  'grpc.reflection.v1alpha.ServerReflection',
  'xds.service.orca.v3.OpenRcaService',
  'grpc.channelz.v1.Channelz',
  'envoy.service.status.v3.ClientStatusDiscoveryService',
  'envoy.service.status.v2.ClientStatusDiscoveryService',
]);

/** "pkg.Service" of a "/pkg.Service/Method" path. */
function serviceOfPath(path: string): string {
  return path.slice(path.startsWith('/') ? 1 : 0, Math.max(0, path.lastIndexOf('/')));
}

/**
 * The methods registered on a grpc.Server, read from its handler table,
 * without those of `excludeServices` (full service names; default
 * INFRASTRUCTURE_SERVICES, [] keeps them all). rebind's own ORCA service is
 * always left out.
 */
export function serverMethods(server: grpc.Server, excludeServices: readonly string[] = INFRASTRUCTURE_SERVICES): Method[] {
  const handlers = (server as unknown as ServerInternals).handlers;
  if (!(handlers instanceof Map)) {
    throw new Error('rebind: cannot read the methods of this grpc.Server; pass `methods` to attach()');
  }
  if (!Array.isArray(excludeServices) || excludeServices.some((name) => typeof name !== 'string')) {
    throw new TypeError('rebind: excludeServices must be an array of full service names (e.g. "grpc.health.v1.Health")');
  }
  const excluded = new Set(excludeServices);
  return [...handlers]
    .filter(([path]) => path !== ORCA_SERVICE_PATH && !excluded.has(serviceOfPath(path)))
    .map(([path, handler]) => ({ path, kind: KIND_BY_HANDLER_TYPE[handler.type] ?? 'UNARY' }));
}

function installInterceptor(server: grpc.Server, interceptor: grpc.ServerInterceptor): void {
  const internals = server as unknown as ServerInternals;
  if (!Array.isArray(internals.interceptors)) {
    throw new Error('rebind: this grpc.Server has no interceptor list (grpc-js >= 1.10 is required)');
  }
  const list = internals.interceptors;
  for (let i = list.length - 1; i >= 0; i--) {
    if ((list[i] as Partial<Record<typeof REBIND_INTERCEPTOR, boolean>>)[REBIND_INTERCEPTOR] === true) list.splice(i, 1);
  }
  // First in the chain: a forwarded call must not reach any other interceptor.
  list.unshift(interceptor);
}

/**
 * Makes the server's own shutdown leave the balancer first: tryShutdown()
 * drains (the balancer stops handing this replica out, rebind clients are
 * sent elsewhere, calls in flight finish) before it stops accepting calls;
 * forceShutdown() sends the detach without waiting. Returns a function that
 * restores the original methods.
 */
function detachOnShutdown(server: grpc.Server, drain: () => Promise<unknown>, detach: (reason: string) => Promise<void>): () => void {
  const originalTry = server.tryShutdown;
  const originalForce = server.forceShutdown;
  server.tryShutdown = function (this: grpc.Server, callback: (error?: Error) => void) {
    void drain().finally(() => originalTry.call(this, callback));
  };
  server.forceShutdown = function (this: grpc.Server) {
    void detach('server shut down');
    originalForce.call(this);
  };
  return () => {
    server.tryShutdown = originalTry;
    server.forceShutdown = originalForce;
  };
}

function removeInterceptor(server: grpc.Server, interceptor: grpc.ServerInterceptor): void {
  const list = (server as unknown as ServerInternals).interceptors;
  const index = list?.indexOf(interceptor) ?? -1;
  if (index >= 0) list!.splice(index, 1);
}

class AttachError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/** One balancer as a replica sees it (Replica.balancers). */
export interface BalancerLinkStatus {
  /** The control address this stream connects to (one address of a DNS name that has several). */
  readonly address: string;
  readonly state: ReplicaState;
  /** Member id this balancer assigned (null before its first acceptance). */
  readonly memberId: string | null;
  /** Successful attachments to this balancer (1 + re-attachments). */
  readonly attachments: number;
  /** Why the stream last failed (null if it never did). */
  readonly lastError: string | null;
}

/**
 * The balancers a replica attaches to: the list given, or the addresses a
 * single DNS name resolves to (each address is a balancer of an HA set).
 * A name that resolves to one address, or not at all, stays the name (as
 * before: grpc-js resolves it, again at each reconnect). Exported for tests.
 */
export async function resolveBalancers(
  spec: string | readonly string[],
  lookup: (host: string) => Promise<string[]> = async (host) => (await dnsLookup(host, { all: true, verbatim: true })).map((a) => a.address),
): Promise<{ address: string; authority: string | null }[]> {
  if (typeof spec !== 'string' && !Array.isArray(spec)) throw new TypeError('rebind attach: balancer must be host:port or an array of them');
  const list: string[] = typeof spec === 'string' ? [spec] : [...spec];
  for (const a of list) {
    const parsed = typeof a === 'string' ? parseHostPort(a) : 'not a string';
    if (typeof parsed === 'string') throw new Error(`rebind attach: balancer ${list.length > 1 ? `${JSON.stringify(a)}: ` : ''}${parsed}`);
  }
  const problem = balancerListProblem('balancer', list);
  if (problem !== null) throw new Error(`rebind attach: ${problem}`);
  if (list.length > 1) return list.map((address) => ({ address, authority: null }));
  const name = list[0]!;
  const { host, port } = parseHostPort(name) as { host: string; port: number };
  if (isIP(host) !== 0) return [{ address: name, authority: null }];
  let found: string[];
  try {
    found = [...new Set(await lookup(host))];
  } catch {
    return [{ address: name, authority: null }]; // grpc-js resolves it itself and retries, as for one balancer
  }
  if (found.length <= 1) return [{ address: name, authority: null }];
  if (found.length > MAX_BALANCERS) {
    throw new Error(`rebind attach: balancer ${name} resolves to ${found.length} addresses; at most ${MAX_BALANCERS} (MAX_BALANCERS) balancers are accepted`);
  }
  // Each address is a balancer; TLS still checks the certificate against the name.
  return found.map((ip) => ({ address: formatHostPort(ip, port), authority: name }));
}

/** One control stream: to one balancer, with its own attachment, secrets and backoff. */
interface Link {
  readonly address: string;
  readonly authority: string | null;
  client: ControlClient;
  clientFailed: boolean;
  state: ReplicaState;
  memberId: string | null;
  attachments: number;
  /** Report sequence number on this stream (starts over at each attachment). */
  seq: number;
  failures: number;
  /** The attachment's resume secret: lets a re-attach replace it if the balancer still holds it. */
  resumeSecret: string;
  /** This balancer's marker for the calls it proxies here (from Attached). */
  proxySecret: Buffer | null;
  /** This balancer's report interval once known: re-attach backoff never exceeds it. */
  reportIntervalMs: number;
  topClients: number;
  call: grpc.ClientDuplexStream<ReplicaMessage, BalancerMessage__Output> | null;
  lastError: string | null;
  subscription: Subscription | null;
}

/**
 * Joins a grpc.Server to a balancer's replica group, or to the same group on
 * each of several balancers (an HA set): one control stream per balancer,
 * each with its own reconnection and backoff; every load report goes to
 * every stream; advisories are applied from any stream (in an HA set only
 * the planning leader sends them); drain and detach tell every balancer.
 */
export async function attach(server: grpc.Server, options: AttachOptions): Promise<Replica> {
  const address = parseHostPort(options.address);
  if (typeof address === 'string') throw new Error(`rebind attach: address ${address}`);
  const targets = await resolveBalancers(options.balancer);
  const scheduler = options.scheduler ?? asyncScheduler;
  const log = moduleLogger('replica', options.logger).child({ group: options.group, address: options.address });
  const random = options.random ?? Math.random;
  const backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
  const methods = options.methods ?? serverMethods(server, options.excludeServices);
  if (methods.length === 0) throw new Error('rebind attach: the server has no methods to advertise (infrastructure services are not: see excludeServices); add services before attach()');
  const replicaId = options.replicaId ?? randomBytes(9).toString('base64url');

  const orca = orcaSettings(options.orca);
  const refusals = new RefusalCounter(log);
  const meter = new LoadMeter(scheduler.now(), { maxTrackedClients: options.maxTrackedClients, refused: refusals.refused });
  const forwards = new ForwardTable(() => scheduler.now(), options.maxTrackedClients);
  const affinity = affinityToken(options.address, replicaId);
  if (orca !== null && !(server as unknown as ServerInternals).handlers?.has(ORCA_SERVICE_PATH)) {
    server.addService(orcaServiceDefinition(), orcaHandlers(meter, { ...orca, scheduler: options.scheduler, refused: refusals.refused }));
  }

  const Control = controlProto().rebind.v1.Control;
  const newClient = (target: string, authority: string | null) =>
    new Control(target, options.credentials ?? grpc.credentials.createInsecure(), {
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      // Its own subchannel: grpc-js's global pool would hand a fresh channel the old,
      // backed-off connection, defeating the replacement below.
      'grpc.use_local_subchannel_pool': 1,
      // One address of a name: the balancer still sees (and TLS still checks) the name.
      ...(authority !== null ? { 'grpc.default_authority': authority, 'grpc.ssl_target_name_override': (parseHostPort(authority) as { host: string }).host } : {}),
    }) as unknown as ControlClient;
  /**
   * The control channels. After a failed attachment a link's channel is
   * replaced by a fresh one (with a fresh subchannel): grpc-js would
   * otherwise keep a refused connection in its own reconnect backoff (1 s,
   * growing to 120 s) and a restarted balancer would wait for that instead
   * of our backoff, which is capped at the report interval.
   */
  const links: Link[] = targets.map(({ address: target, authority }): Link => ({
    address: target,
    authority,
    client: newClient(target, authority),
    clientFailed: false,
    state: 'connecting',
    memberId: null,
    attachments: 0,
    seq: 0,
    failures: 0,
    resumeSecret: '',
    proxySecret: null,
    reportIntervalMs: Number.POSITIVE_INFINITY,
    topClients: 32,
    call: null,
    lastError: null,
    subscription: null,
  }));

  /** Any balancer's marker for the calls it proxies here; each balancer has its own. */
  const isProxied = (marker: string): boolean => {
    const presented = Buffer.from(marker);
    for (const link of links) {
      const secret = link.proxySecret;
      if (secret !== null && presented.length === secret.length && timingSafeEqual(presented, secret)) return true;
    }
    refusals.refused('bad_proxied_marker', 'a call carried a rebind-proxied header that is not the balancer\'s marker; treated as a direct call');
    return false;
  };
  const interceptor = createServerInterceptor(meter, forwards, affinity, isProxied);
  installInterceptor(server, interceptor);

  const state$ = new BehaviorSubject<ReplicaState>('connecting');
  let detaching = false;
  let lastMemberId: string | null = null;
  const attachedLinks = () => links.filter((l) => l.state === 'attached' && l.call !== null);
  /** The replica's state: attached while any balancer holds it, detached once every link gave up. */
  const updateState = () => {
    const next: ReplicaState = links.some((l) => l.state === 'attached') ? 'attached' : links.every((l) => l.state === 'detached') ? 'detached' : 'connecting';
    if (state$.value !== next && !state$.closed) state$.next(next);
  };

  /**
   * One load snapshot per interval, written to every attached stream: the
   * meter counts an interval once, and every balancer sees the same load.
   */
  let lastSnapshot: LoadSnapshot | null = null;
  const writeReport = (link: Link, snapshot: LoadSnapshot) => {
    let report = snapshot;
    const top = snapshot.topClients ?? [];
    if (top.length > link.topClients) {
      // This balancer asked for fewer: the rest count as unattributed, as the meter would have.
      const dropped = top.slice(link.topClients).reduce((sum, c) => sum + Number(c.callsPerS ?? 0), 0);
      report = { ...snapshot, topClients: top.slice(0, link.topClients), otherCallsPerS: Number(snapshot.otherCallsPerS ?? 0) + dropped };
    }
    link.call!.write({ report: { ...report, draining: forwards.draining || snapshot.draining, seq: ++link.seq } });
  };
  const reportNow = (draining: boolean): boolean => {
    const to = attachedLinks();
    if (to.length === 0) return false;
    forwards.sweep();
    const top = Math.max(...to.map((l) => l.topClients));
    const snapshot = meter.snapshot(scheduler.now(), top, options.loadCallback?.(), draining);
    lastSnapshot = snapshot;
    for (const link of to) writeReport(link, snapshot);
    return true;
  };
  let reports: Subscription | null = null;
  let reportPeriodMs = 0;
  /** (Re)starts the report loop at the shortest interval any attached balancer asked for; stops it when none is attached. */
  const scheduleReports = () => {
    const attached = attachedLinks();
    const periodMs = attached.length === 0 ? 0 : Math.min(...attached.map((l) => l.reportIntervalMs));
    if (periodMs === reportPeriodMs) return;
    reports?.unsubscribe();
    reports = null;
    reportPeriodMs = periodMs;
    if (periodMs > 0) reports = interval(periodMs, scheduler).subscribe(() => reportNow(forwards.draining));
  };

  /** One attachment to one balancer: emits its messages; errors when the stream fails. */
  const session$ = (link: Link) =>
    new Observable<BalancerMessage__Output>((subscriber) => {
      if (link.clientFailed) {
        link.client.close();
        link.client = newClient(link.address, link.authority);
        link.clientFailed = false;
      }
      const call = link.client.attach(tokenMetadata(options.token));
      link.call = call;
      call.on('data', (message: BalancerMessage__Output) => {
        switch (message.body) {
          case 'attached': {
            const attached = message.attached!;
            const othersAttached = attachedLinks().some((l) => l !== link);
            link.memberId = attached.memberId;
            lastMemberId = attached.memberId;
            link.resumeSecret = attached.resumeSecret;
            link.proxySecret = attached.proxySecret === '' ? null : Buffer.from(attached.proxySecret);
            link.attachments++;
            link.seq = 0;
            // Within what any balancer configuration allows: a larger value would overflow
            // the timer (Node fires 32-bit overflows after 1 ms) and report every millisecond.
            link.reportIntervalMs = Math.min(MAX_REPORT_INTERVAL_MS, Math.max(10, attached.reportIntervalMs || 1000));
            link.topClients = Math.min(MAX_TOP_CLIENTS, Math.max(1, attached.topClients || 32));
            link.state = 'attached';
            if (!othersAttached) {
              // The first (or only) balancer holding us: start over from what it says.
              forwards.reset(attached.recallAll);
              meter.snapshot(scheduler.now(), link.topClients, undefined, false); // start a fresh interval
              reportNow(forwards.draining);
            } else if (lastSnapshot !== null) {
              // Another balancer's advice stands; the newcomer gets the interval already measured
              // (taking a new snapshot would cut every other balancer's interval short).
              writeReport(link, lastSnapshot);
            }
            scheduleReports();
            log.info({ member: link.memberId, balancer: link.address, reportIntervalMs: link.reportIntervalMs }, `attached as ${link.memberId}${links.length > 1 ? ` to ${link.address}` : ''}`);
            updateState();
            break;
          }
          case 'advisory': {
            const { advisory, problems } = sanitizeAdvisory(message.advisory!);
            for (const p of problems) log.warn(p);
            forwards.apply(advisory);
            log.debug({ moves: advisory.moves.length, recallAll: advisory.recallAll, balancer: link.address }, `advisory ${advisory.seq}`);
            break;
          }
          case 'notice':
            log.warn({ code: message.notice!.code, seq: message.notice!.reportSeq, balancer: link.address }, `balancer refused a message: ${message.notice!.message}`);
            break;
          default:
            log.warn({ balancer: link.address }, 'balancer sent an empty message');
        }
        subscriber.next(message);
      });
      call.on('error', (err: grpc.ServiceError) => subscriber.error(new AttachError(err.code, err.details || err.message)));
      call.on('end', () => {
        if (detaching) subscriber.complete();
        else subscriber.error(new AttachError(grpc.status.UNAVAILABLE, 'the balancer ended the control stream'));
      });
      call.write({ hello: { protocolVersion: PROTOCOL_VERSION, group: options.group, address: options.address, methods, replicaId, resumeSecret: link.resumeSecret } });
      return () => {
        if (link.call === call) link.call = null;
        if (link.state === 'attached') link.state = 'connecting';
        scheduleReports();
        // No attachment, no advice: a recall or move of this one must not outlive it
        // (another balancer's attachment, when one stands, keeps its own).
        if (attachedLinks().length === 0) forwards.reset(false);
        call.removeAllListeners('data');
        call.on('error', () => undefined);
        call.cancel();
      };
    });

  let firstError: Error | null = null;
  for (const link of links) {
    const loop = defer(() => session$(link)).pipe(
      retry({
        resetOnSuccess: true,
        delay: (err: unknown) => {
          const code = err instanceof AttachError ? err.code : grpc.status.UNKNOWN;
          const message = err instanceof Error ? err.message : String(err);
          link.lastError = message;
          if (detaching) return throwError(() => err);
          if (link.attachments === 0 && PERMANENT.has(code)) return throwError(() => err);
          if (link.state === 'attached') link.state = 'connecting';
          updateState();
          if (code === grpc.status.UNAVAILABLE) link.clientFailed = true;
          // Capped at the report interval, so that a restarted balancer has this replica back within about one interval.
          const base = Math.min(backoff.maxMs, link.reportIntervalMs, backoff.initialMs * backoff.multiplier ** link.failures);
          link.failures++;
          const delayMs = Math.round(base * (1 - backoff.jitter + 2 * backoff.jitter * random()));
          log.warn({ code: grpc.status[code] ?? code, delayMs }, `control stream to ${link.address} failed (${message}); re-attaching in ${delayMs} ms`);
          return timer(delayMs, scheduler);
        },
      }),
    );
    link.subscription = loop.subscribe({
      next: (message) => {
        if (message.body === 'attached') link.failures = 0;
      },
      error: (err: Error) => {
        firstError ??= err;
        link.lastError = err.message;
        if (!detaching) log.error({ err: err.message }, `cannot attach to ${link.address}: ${err.message}`);
        link.state = 'detached';
        updateState();
      },
      complete: () => {
        link.state = 'detached';
        updateState();
      },
    });
  }

  const replica: Replica = {
    get memberId() {
      return attachedLinks()[0]?.memberId ?? lastMemberId;
    },
    get state() {
      return state$.value;
    },
    state$: state$.asObservable(),
    meter,
    forwards,
    affinity,
    replicaId,
    refusals: refusals.counts,
    get attachments() {
      return links.reduce((sum, l) => sum + l.attachments, 0);
    },
    get balancers() {
      return links.map((l) => ({ address: l.address, state: l.state, memberId: l.memberId, attachments: l.attachments, lastError: l.lastError }));
    },
    async drain({ timeoutMs = 30_000, reason = 'drained' } = {}) {
      // Every balancer first, so that none sends clients here after we send them back.
      if (!detaching) reportNow(true);
      forwards.draining = true;
      log.info({ inFlight: meter.inFlight }, 'draining');
      const deadline = Date.now() + timeoutMs;
      while (meter.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      const inFlightLeft = Math.max(0, meter.inFlight);
      // A last report, so that the balancers count the forwards sent while draining.
      if (!detaching) reportNow(true);
      await replica.detach(inFlightLeft === 0 ? reason : `${reason}; drain timed out with ${inFlightLeft} call(s) in flight`);
      return { inFlightLeft };
    },
    async detach(reason = 'shutting down') {
      if (detaching) return;
      detaching = true;
      restoreShutdown();
      // Every balancer holding us hears it, at once.
      await Promise.all(
        attachedLinks().map((link) => {
          const call = link.call!;
          const ended = new Promise<void>((resolve) => {
            call.once('end', resolve);
            call.once('error', () => resolve());
            setTimeout(resolve, 2000).unref();
          });
          call.write({ detach: { reason } });
          call.end();
          return ended;
        }),
      );
      reports?.unsubscribe();
      for (const link of links) {
        link.subscription?.unsubscribe();
        link.client.close();
        link.state = 'detached';
      }
      removeInterceptor(server, interceptor);
      state$.next('detached');
      state$.complete();
      log.info({ reason }, 'detached');
    },
  };

  const restoreShutdown = detachOnShutdown(
    server,
    () => replica.drain({ timeoutMs: SHUTDOWN_DRAIN_TIMEOUT_MS, reason: 'server shutting down' }),
    (reason) => replica.detach(reason),
  );

  if (options.waitForAttach !== false) {
    const settled = await firstValueFrom(state$.pipe(filter((s) => s !== 'connecting')));
    if (settled === 'detached') {
      // Every balancer refused us for good (a single one: as before).
      await replica.detach('attach failed');
      throw firstError ?? new Error('rebind attach: detached before attaching');
    }
  }
  return replica;
}

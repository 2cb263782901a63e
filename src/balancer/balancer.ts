/**
 * The balancer process: TAO's LoadManager (replica locator + load analyzer)
 * for gRPC. It owns the member registry, the analyzer loop, the control
 * server (Control + Admin services, grpc-js) and the data plane (the address
 * clients target, node:http2).
 */
import * as grpc from '@grpc/grpc-js';
import { asyncScheduler, type SchedulerLike } from 'rxjs';
import { moduleLogger, type Logger } from '../common/logger';
import { WarnLimiter } from '../common/warn-limiter';
import { controlProto } from '../common/proto';
import type { Registry as PromRegistry } from 'prom-client';
import { Admin, adminHandlers } from './admin';
import { AdminHttp } from './admin-http';
import { DecisionLog } from './decisions';
import type { Group } from './group';
import { balancerMetrics, type HaMetricSource } from './prometheus';
import { Analyzer } from './analyzer';
import { isValidatedConfig, MIN_TOKEN_LENGTH, parseBalancerConfig, type BalancerConfig } from './config';
import { controlHandlers, controlServiceDefinition } from './control-service';
import { attachStreamHandler, ControlPort } from './control-port';
import { DataPlane, type DataPlaneEvents } from './data-plane';
import { readFileSync } from 'node:fs';
import { controlAuthInterceptor } from './auth';
import { isLoopbackHost, isLoopbackPeer, parseListenAddress } from '../common/address';
import { XdsServer } from './xds/ads';
import { lrsHandlers } from './xds/lrs';
import { xdsServices } from './xds/protos';
import { Registry } from './registry';
import { Voucher } from './vouch';
import { Coordinator } from './ha/coordinator';
import { KEYRING_DOC, KeyRingSync } from './ha/keyring-sync';
import { DEFAULT_CONTROL_LIMITS, type ControlLimits } from './validate';

/**
 * How long start() waits for etcd's run-time configuration before serving
 * with the file's, ms (etcd down: start goes on; the values apply when etcd answers).
 */
export const HA_START_SYNC_WAIT_MS = 2000;

/** The rebind_ha_* metrics' source. */
function haMetrics(c: Coordinator, registry: Registry): () => HaMetricSource {
  return () => ({ etcdUp: c.etcdUp, leading: [...registry.groups.keys()].map((g): [string, boolean] => [g, c.isLeader(g)]), balancers: c.balancers().length, leaderGains: c.leaderGains });
}

export interface BalancerOptions {
  /** Validated configuration, or a raw object to validate. */
  config: BalancerConfig | Record<string, unknown>;
  /** Scheduler for the analyzer loop and report timestamps (virtual in tests). */
  scheduler?: SchedulerLike;
  logger?: Logger;
  /** Random source for strategies (seeded in tests). */
  random?: () => number;
  limits?: Partial<ControlLimits>;
  /** Hooks on data-plane decisions (tests, metrics). */
  events?: DataPlaneEvents;
  /** Export Node's process metrics (CPU, memory, event loop) with the balancer's (default true). */
  processMetrics?: boolean;
}

/** Thrown when a configuration does not validate; `errors` lists every problem. */
export class ConfigError extends Error {
  constructor(readonly errors: string[]) {
    super(`invalid configuration:\n  - ${errors.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

function readFile(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new Error(`cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** A role's token from the configuration (inline or file), or null. */
function roleToken(config: BalancerConfig, role: 'replica' | 'admin'): string | null {
  const inline = config.security[`${role}Token`];
  if (inline !== null) return inline;
  const file = config.security[`${role}TokenFile`];
  if (file === null) return null;
  const token = readFile(file, `security.${role}TokenFile`).toString('utf8').trim();
  if (token.length < MIN_TOKEN_LENGTH || /\s/.test(token)) {
    throw new Error(`security.${role}TokenFile ${file} must hold a token of at least ${MIN_TOKEN_LENGTH} characters without spaces`);
  }
  return token;
}

export class Balancer {
  /** host:port clients target. */
  address = '';
  /** host:port replicas attach to and the admin API listens on. */
  controlAddress = '';
  /** host:port of the admin HTTP port (metrics, dashboard), or '' when disabled. */
  adminAddress = '';
  /** Recent decisions and membership changes (the dashboard's feed). */
  readonly decisions = new DecisionLog();
  /** Prometheus metrics (served at /metrics on the admin port). */
  readonly metrics: PromRegistry;
  private readonly adminHttp: AdminHttp | null;
  private readonly startedAtMs = Date.now();
  readonly registry: Registry;
  readonly analyzer: Analyzer;
  readonly admin: Admin;
  readonly dataPlane: DataPlane;
  readonly config: BalancerConfig;
  /** Signs forward targets; its public key reaches clients with the balancer's forwards. */
  readonly voucher: Voucher;
  /** Inputs refused, by reason (control and data plane). */
  readonly refusals = new Map<string, number>();
  private readonly controlServer: grpc.Server;
  /** The control port's listener: Attach on rebind's transport, the rest on controlServer (injected). */
  readonly controlPort: ControlPort;
  /** The xDS management server (ADS, LRS) on the control port; null when `xds.enabled` is false. */
  readonly xds: XdsServer | null = null;
  private readonly log: Logger;
  /** Coordination with the other balancers through etcd (configuration `ha`); null: a single balancer. */
  readonly coordinator: Coordinator | null = null;
  /** The vouching key ring shared through etcd (configuration `ha`); null: this balancer's own key. */
  readonly keyRing: KeyRingSync | null = null;

  private constructor(options: BalancerOptions) {
    let config: BalancerConfig;
    if (isValidatedConfig(options.config)) {
      config = options.config;
    } else {
      const parsed = parseBalancerConfig(options.config);
      if (!parsed.ok) throw new ConfigError(parsed.errors);
      config = parsed.value;
    }
    this.config = config;
    const scheduler = options.scheduler ?? asyncScheduler;
    this.log = moduleLogger('balancer', options.logger);
    const refused = (reason: string) => this.refusals.set(reason, (this.refusals.get(reason) ?? 0) + 1);
    this.voucher = new Voucher();
    this.registry = new Registry(config, moduleLogger('balancer.registry', options.logger), options.random);
    this.analyzer = new Analyzer(
      this.registry,
      scheduler,
      moduleLogger('balancer.analyzer', options.logger),
      {
        advised: (group, member, moves) => {
          const targets = [...new Set(moves.map((m) => m.target))].join(', ');
          this.decisions.record('advisory', group.name, `advisory to ${member.id} (${member.address}): move ${moves.length} client(s) to ${targets}`);
        },
        recalled: (group, recallAll) =>
          this.decisions.record('recall', group.name, recallAll ? 'recall: direct clients come back through the balancer' : 'recall ended: clients may bind directly again'),
      },
      this.voucher,
    );
    this.admin = new Admin(this.registry, this.analyzer, moduleLogger('balancer.admin', options.logger), (kind, group, text) => this.decisions.record(kind, group, text));
    const watchGroup = (group: Group) => {
      group.events = {
        stateChanged: (g, member, from, to) => {
          this.decisions.record('member-state', g.name, `member ${member.id} (${member.address}): ${from} -> ${to}`);
          // A draining member takes no client: xDS clients bound to it get a binding without it now.
          if (to === 'DRAINING') this.xds?.memberGone(g, member);
        },
      };
    };
    for (const group of this.registry.groups.values()) watchGroup(group);
    if (config.ha !== null) {
      this.coordinator = this.coordinate(config.ha, options.logger, refused);
      this.keyRing = new KeyRingSync({ doc: this.coordinator.sharedDoc(KEYRING_DOC), voucher: this.voucher, rotationMs: config.ha.keyRotationMs, log: moduleLogger('balancer.ha', options.logger), refused });
    }
    this.registry.listen({
      groupAdded: watchGroup,
      memberAdded: (group, member) => this.decisions.record('member-joined', group.name, `member ${member.id} (${member.address}) attached`),
      memberRemoved: (group, member, reason) => this.decisions.record('member-left', group.name, `member ${member.id} (${member.address}) removed: ${reason}`),
    });
    this.metrics = balancerMetrics(
      {
        registry: this.registry,
        refusals: this.refusals,
        xds: () => (this.xds === null ? null : { streams: this.xds.streamCount, pushes: this.xds.pushes, nacks: this.xds.nacks }),
        ...(this.coordinator !== null ? { ha: haMetrics(this.coordinator, this.registry) } : {}),
        dataH2: () => {
          const counters = this.dataPlane.h2Counters();
          return counters === null ? null : { counters, connections: this.dataPlane.connections };
        },
        controlPort: () => this.controlPort.stats(),
        upstreamH2: () => ({ counters: this.dataPlane.upstreams.counters, connections: this.dataPlane.upstreams.connections }),
      },
      { processMetrics: options.processMetrics ?? true, maxMemberSeries: config.limits.maxMemberSeries, log: moduleLogger('balancer.metrics', options.logger) },
    );
    const upstreamCa = config.security.upstreamCaFile !== null ? readFile(config.security.upstreamCaFile, 'security.upstreamCaFile') : null;
    this.dataPlane = new DataPlane(
      this.registry,
      moduleLogger('balancer.data', options.logger),
      this.voucher,
      { ...options.events, refused: (reason) => (refused(reason), options.events?.refused?.(reason)) },
      () => scheduler.now(),
      upstreamCa,
      { limits: config.limits, proxy: config.proxy },
    );
    const replicaToken = roleToken(config, 'replica');
    const adminToken = roleToken(config, 'admin');
    if (replicaToken !== null && replicaToken === adminToken) throw new Error('security: the replica and admin tokens are the same; give each role its own');
    const controlLog = moduleLogger('balancer.control', options.logger);
    const controlWarn = new WarnLimiter(controlLog);
    const controlHost = parseListenAddress(config.controlListen);
    const authRefused = (reason: string, peer: string) => {
      refused(reason);
      controlWarn.warn(reason, { peer, reason }, `refused: control call (${reason})`);
    };
    this.controlServer = new grpc.Server({
      'grpc.max_receive_message_length': config.limits.maxControlMessageBytes,
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      interceptors: [
        controlAuthInterceptor({ replicaToken, adminToken, loopbackOnly: typeof controlHost !== 'string' && isLoopbackHost(controlHost.host) }, authRefused),
      ],
    });
    const proto = controlProto();
    const control = controlHandlers({
        registry: this.registry,
        analyzer: this.analyzer,
        scheduler,
        log: controlLog,
        warn: controlWarn,
        limits: { ...DEFAULT_CONTROL_LIMITS, maxMethods: config.limits.maxMethodsPerReplica, ...options.limits },
        maxReportsPerInterval: config.limits.maxReportsPerInterval,
        helloTimeoutMs: config.limits.helloTimeoutMs,
        maxPendingAttachments: config.limits.maxPendingAttachments,
        maxRefusedPerInterval: config.limits.maxRefusedPerInterval,
        replicaIdentities: config.security.controlTls?.requireClientCert === true ? config.security.replicaIdentities : null,
        refused,
    });
    // Attach also stays on grpc-js, for a connection whose first call was something else.
    this.controlServer.addService(controlServiceDefinition(proto.rebind.v1.Control.service), control);
    const controlTlsFiles = config.security.controlTls;
    this.controlPort = new ControlPort({
      grpcServer: this.controlServer,
      tls:
        controlTlsFiles === null
          ? null
          : {
              cert: readFile(controlTlsFiles.certFile, 'security.controlTls.certFile'),
              key: readFile(controlTlsFiles.keyFile, 'security.controlTls.keyFile'),
              ca: controlTlsFiles.caFile !== null ? readFile(controlTlsFiles.caFile, 'security.controlTls.caFile') : null,
              requireClientCert: controlTlsFiles.requireClientCert,
            },
      refused,
      onAttach: attachStreamHandler({
        replicaToken,
        authRefused,
        refused,
        maxMessageBytes: config.limits.maxControlMessageBytes,
        serialize: proto.rebind.v1.Control.service.Attach.responseSerialize as (message: unknown) => Buffer,
        attach: control.Attach as (call: never) => void,
      }),
    });
    this.controlServer.addService(proto.rebind.v1.Admin.service, adminHandlers(this.admin));
    if (config.xds.enabled) {
      const xdsLog = moduleLogger('balancer.xds', options.logger);
      const xdsWarn = new WarnLimiter(xdsLog);
      const mtls = config.security.controlTls?.requireClientCert === true;
      // An xDS client is served if the control port verified its certificate, it is on loopback, or configuration says anyone may.
      const admit = (call: grpc.ServerDuplexStream<unknown, unknown>): boolean => mtls || config.xds.allowUnauthenticated || isLoopbackPeer(call.getPeer());
      const now = () => scheduler.now();
      this.xds = new XdsServer({ registry: this.registry, log: xdsLog, warn: xdsWarn, refused, now, admit, limits: { maxStreams: config.xds.maxStreams, maxNamesPerType: config.xds.maxNamesPerType } });
      const services = xdsServices();
      this.controlServer.addService(services.ads, this.xds.handlers() as never);
      const intervalMs = () => Math.min(...[...this.registry.groups.values()].map((g) => g.config.reportIntervalMs), 60_000);
      this.controlServer.addService(services.lrs, lrsHandlers({ registry: this.registry, log: xdsLog, warn: xdsWarn, refused, now, admit, intervalMs, maxStreams: config.xds.maxStreams }) as never);
      const xds = this.xds;
      this.analyzer.pushXds = (group, binding) => xds.rebind(group, binding.clientId, binding.members);
      this.analyzer.offersChanged = (group) => xds.membershipChanged(group);
    }
    const controlTls = config.security.controlTls;
    this.adminHttp =
      config.adminListen === null
        ? null
        : new AdminHttp({
            admin: this.admin,
            registry: this.registry,
            decisions: this.decisions,
            metrics: this.metrics,
            token: adminToken,
            tls:
              controlTls === null
                ? null
                : {
                    cert: readFile(controlTls.certFile, 'security.controlTls.certFile'),
                    key: readFile(controlTls.keyFile, 'security.controlTls.keyFile'),
                    ca: controlTls.caFile !== null ? readFile(controlTls.caFile, 'security.controlTls.caFile') : null,
                    requireClientCert: controlTls.requireClientCert,
                  },
            pushIntervalMs: config.dashboardPushIntervalMs,
            unauthenticatedChanges: config.security.adminUnauthenticatedChanges,
            hosts: config.security.adminHosts,
            log: moduleLogger('balancer.admin-http', options.logger),
            refused,
            info: () => ({ address: this.address, controlAddress: this.controlAddress, startedAtMs: this.startedAtMs }),
            ...(this.coordinator !== null ? { health: () => this.health(), ha: () => this.haView() } : {}),
          });
  }

  /**
   * Wires the coordinator: the analyzer plans and advises a group only while
   * this balancer is its proven leader; run-time changes go through etcd and
   * are applied from it (at start over the file's values, then on every change).
   */
  private coordinate(ha: NonNullable<BalancerConfig['ha']>, logger: Logger | undefined, ignored: (reason: string) => void): Coordinator {
    const coordinator = new Coordinator({
      config: ha,
      ignored,
      self: () => ({ address: this.address, controlAddress: this.controlAddress, adminAddress: this.adminAddress, startedAtMs: this.startedAtMs }),
      groups: () => [...this.registry.groups.keys()],
      log: moduleLogger('balancer.ha', logger),
    });
    this.analyzer.mayAdvise = (group) => coordinator.isLeader(group);
    // Each balancer sees only its own pending binds: count them once per live balancer (the others bind at about the same rate).
    this.registry.peerBalancers = () => coordinator.peerCount();
    this.admin.runtime = { write: (group, change, current) => coordinator.writeGroupConfig(group, change, current) };
    this.admin.haStatus = () => {
      const view = this.haView();
      return {
        balancerId: view.balancerId,
        etcdUp: view.etcdUp,
        etcdDownSinceUnixMs: view.etcdDownSinceMs ?? 0,
        balancers: view.balancers.map((b) => ({ id: b.id, address: b.address, controlAddress: b.controlAddress, adminAddress: b.adminAddress, startedAtUnixMs: b.startedAtMs })),
        leaders: view.leaders.map((l) => ({ group: l.group, balancerId: l.leader ?? '', leading: l.leading })),
      };
    };
    coordinator.on('configChanged', (group, cfg) => this.admin.applyRuntime(group, cfg, cfg.by));
    coordinator.on('leadershipChanged', (group, leading) =>
      this.decisions.record('leader', group, leading ? `this balancer (${coordinator.id}) leads the group: it plans and advises` : `this balancer (${coordinator.id}) no longer leads the group`),
    );
    this.registry.listen({ groupAdded: (group) => coordinator.addGroup(group.name) });
    return coordinator;
  }

  /** /healthz: "ok", or degraded while etcd is unreachable (the balancer still serves binds, forwards and proxied calls). */
  private health(): string {
    const c = this.coordinator;
    if (c === null || c.etcdUp) return 'ok';
    const since = c.etcdDownSinceMs === null ? 'start' : new Date(c.etcdDownSinceMs).toISOString();
    return `degraded: etcd ${c.etcdFailure?.summary ?? 'unreachable'} since ${since}, not planning`;
  }

  /** The `ha` object of /api/state: this balancer, etcd health, the balancers and the leader of each group. */
  haView(): { balancerId: string; etcdUp: boolean; etcdDownSinceMs: number | null; balancers: ReturnType<Coordinator['balancers']>; leaders: { group: string; leader: string | null; leading: boolean }[] } {
    const c = this.coordinator!;
    return {
      balancerId: c.id,
      etcdUp: c.etcdUp,
      etcdDownSinceMs: c.etcdDownSinceMs,
      balancers: c.balancers(),
      leaders: [...this.registry.groups.keys()].map((group) => ({ group, leader: c.leaderOf(group), leading: c.isLeader(group) })),
    };
  }

  /** Validates the configuration, binds both ports and starts the analyzer. */
  static async start(options: BalancerOptions): Promise<Balancer> {
    const balancer = new Balancer(options);
    try {
      const dataTls = balancer.config.security.dataTls;
      balancer.address = await balancer.dataPlane.listen(
        balancer.config.listen,
        dataTls === null
          ? null
          : {
              cert: readFile(dataTls.certFile, 'security.dataTls.certFile'),
              key: readFile(dataTls.keyFile, 'security.dataTls.keyFile'),
              ca: dataTls.caFile !== null ? readFile(dataTls.caFile, 'security.dataTls.caFile') : null,
              requireClientCert: dataTls.requireClientCert,
            },
      );
      const port = await balancer.controlPort.listen(balancer.config.controlListen);
      balancer.controlAddress = balancer.config.controlListen.replace(/:[0-9]+$/, port.slice(port.lastIndexOf(':')));
      if (balancer.adminHttp !== null && balancer.config.adminListen !== null) balancer.adminAddress = await balancer.adminHttp.listen(balancer.config.adminListen);
    } catch (err) {
      await balancer.stop();
      throw err;
    }
    if (balancer.coordinator !== null) {
      balancer.coordinator.start();
      // Serve with etcd's run-time configuration from the first bind when etcd answers; never wait longer for it.
      await balancer.coordinator.synced(HA_START_SYNC_WAIT_MS);
      // Sign with the shared ring from the first bind when etcd answers (clients bound through any balancer then accept this one's vouchers).
      const ring = balancer.keyRing!.start().catch((err: Error) => balancer.log.warn({ err: err.message }, 'could not read the shared key ring yet; signing with this balancer\'s own key until etcd answers'));
      await Promise.race([ring, new Promise((resolve) => setTimeout(resolve, HA_START_SYNC_WAIT_MS).unref())]);
    }
    balancer.analyzer.start();
    balancer.log.info(
      {
        address: balancer.address,
        control: balancer.controlAddress,
        admin: balancer.adminAddress || null,
        groups: balancer.config.groups.map((g) => g.name),
        replicaToken: balancer.config.security.replicaToken !== null || balancer.config.security.replicaTokenFile !== null,
        adminToken: balancer.config.security.adminToken !== null || balancer.config.security.adminTokenFile !== null,
        controlTls: balancer.config.security.controlTls !== null,
        dataTls: balancer.config.security.dataTls !== null,
        ...(balancer.coordinator !== null ? { ha: { id: balancer.coordinator.id, etcdUp: balancer.coordinator.etcdUp } } : {}),
      },
      'balancer started',
    );
    return balancer;
  }

  /** Stops both ports and the analyzer. Attached replicas see their stream end. */
  async stop(): Promise<void> {
    this.analyzer.stop();
    // Revoking the lease hands this balancer's leaderships over at once.
    this.keyRing?.stop();
    await this.coordinator?.stop();
    await this.adminHttp?.close();
    await this.controlPort.close();
    this.controlServer.forceShutdown();
    await this.dataPlane.close();
  }
}

/**
 * The balancer process: TAO's LoadManager (replica locator + load analyzer)
 * for gRPC. It owns the member registry, the analyzer loop, the control
 * server (Control + Admin services, grpc-js) and the data plane (the address
 * clients target, node:http2).
 */
import * as grpc from '@grpc/grpc-js';
import { asyncScheduler, type SchedulerLike } from 'rxjs';
import { moduleLogger, type Logger } from '../common/logger';
import { controlProto } from '../common/proto';
import { Admin, adminHandlers } from './admin';
import { Analyzer } from './analyzer';
import { parseBalancerConfig, type BalancerConfig } from './config';
import { controlHandlers } from './control-service';
import { DataPlane, type DataPlaneEvents } from './data-plane';
import { Registry } from './registry';
import { DEFAULT_CONTROL_LIMITS, type ControlLimits } from './validate';

/** Largest control message the balancer accepts, bytes. */
export const DEFAULT_MAX_CONTROL_MESSAGE_BYTES = 1024 * 1024;

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
}

/** Thrown when a configuration does not validate; `errors` lists every problem. */
export class ConfigError extends Error {
  constructor(readonly errors: string[]) {
    super(`invalid configuration:\n  - ${errors.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

function isValidated(config: BalancerConfig | Record<string, unknown>): config is BalancerConfig {
  return Array.isArray((config as BalancerConfig).groups) && typeof (config as BalancerConfig).groupDefaults === 'object' && typeof (config as BalancerConfig).autoCreateGroups === 'boolean';
}

export class Balancer {
  /** host:port clients target. */
  address = '';
  /** host:port replicas attach to and the admin API listens on. */
  controlAddress = '';
  readonly registry: Registry;
  readonly analyzer: Analyzer;
  readonly admin: Admin;
  readonly dataPlane: DataPlane;
  readonly config: BalancerConfig;
  private readonly controlServer: grpc.Server;
  private readonly log: Logger;

  private constructor(options: BalancerOptions) {
    let config: BalancerConfig;
    if (isValidated(options.config)) {
      config = options.config;
    } else {
      const parsed = parseBalancerConfig(options.config);
      if (!parsed.ok) throw new ConfigError(parsed.errors);
      config = parsed.value;
    }
    this.config = config;
    const scheduler = options.scheduler ?? asyncScheduler;
    this.log = moduleLogger('balancer', options.logger);
    this.registry = new Registry(config, moduleLogger('balancer.registry', options.logger), options.random);
    this.analyzer = new Analyzer(this.registry, scheduler, moduleLogger('balancer.analyzer', options.logger));
    this.admin = new Admin(this.registry, this.analyzer, moduleLogger('balancer.admin', options.logger));
    this.dataPlane = new DataPlane(this.registry, moduleLogger('balancer.data', options.logger), options.events, () => scheduler.now());
    this.controlServer = new grpc.Server({
      'grpc.max_receive_message_length': DEFAULT_MAX_CONTROL_MESSAGE_BYTES,
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
    });
    const proto = controlProto();
    this.controlServer.addService(
      proto.rebind.v1.Control.service,
      controlHandlers({
        registry: this.registry,
        analyzer: this.analyzer,
        scheduler,
        log: moduleLogger('balancer.control', options.logger),
        limits: { ...DEFAULT_CONTROL_LIMITS, ...options.limits },
      }),
    );
    this.controlServer.addService(proto.rebind.v1.Admin.service, adminHandlers(this.admin));
  }

  /** Validates the configuration, binds both ports and starts the analyzer. */
  static async start(options: BalancerOptions): Promise<Balancer> {
    const balancer = new Balancer(options);
    try {
      balancer.address = await balancer.dataPlane.listen(balancer.config.listen);
      const port = await new Promise<number>((resolve, reject) =>
        balancer.controlServer.bindAsync(balancer.config.controlListen, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
      );
      balancer.controlAddress = balancer.config.controlListen.replace(/:[0-9]+$/, `:${port}`);
    } catch (err) {
      await balancer.stop();
      throw err;
    }
    balancer.analyzer.start();
    balancer.log.info({ address: balancer.address, control: balancer.controlAddress, groups: balancer.config.groups.map((g) => g.name) }, 'balancer started');
    return balancer;
  }

  /** Stops both ports and the analyzer. Attached replicas see their stream end. */
  async stop(): Promise<void> {
    this.analyzer.stop();
    this.controlServer.forceShutdown();
    await this.dataPlane.close();
  }
}

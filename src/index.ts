/**
 * rebind: adaptive, on-demand load balancing for gRPC, after TAO's CORBA
 * load balancing service.
 *
 * For users:
 *   - replicas: `attach(server, { balancer, group, address })`
 *   - clients:  `new Client(balancerAddress, creds, clientOptions())`
 *   - balancer: `Balancer.start({ config })` or the `rebind balancer` CLI
 */
export { attach, serverMethods, INFRASTRUCTURE_SERVICES, type AttachOptions, type Replica, type ReplicaState, type BackoffOptions, type BalancerLinkStatus } from './replica/attach';
export { MAX_BALANCERS, balancerTarget } from './common/balancers';
export { clientOptions, clientIdOf, type ClientOptionsInput } from './interceptors/client-options';
export { clientEvents, type RebindClientEvents } from './interceptors/client-policy';
export { Balancer, ConfigError, type BalancerOptions } from './balancer/balancer';
export {
  parseBalancerConfig,
  serializeBalancerConfig,
  GRANULARITIES,
  type BalancerConfig,
  type GroupConfig,
  type Granularity,
} from './balancer/config';
export { STRATEGIES, strategyFactory, strategyNames } from './balancer/strategies/index';
export { METRICS, type Metric } from './balancer/metrics';
export * as wire from './common/wire';

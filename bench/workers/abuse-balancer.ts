/**
 * The abuse benchmark's balancer (Balancer.start in this process, so that
 * its heap, RSS, CPU and refusal counters can be read over IPC). Run with
 * --expose-gc: `gc` forces a full collection before a measurement.
 *   stats  process.memoryUsage(), process.cpuUsage(), balancer.refusals
 *   gc     global.gc() (twice: weak references, then what they held)
 */
import { Balancer } from '../../src/index';
import { fatal, send, serveMeasured } from './worker-util';

/** Groups of the bench: rebind clients' on-demand group, and a per-request group for the proxy vectors. */
const ABUSE_GROUPS = [
  { name: 'echo', granularity: 'on-demand', strategy: 'minimum_dispersion', reportIntervalMs: 500 },
  { name: 'stream', granularity: 'per-request', strategy: 'round_robin', reportIntervalMs: 500 },
];

async function main(): Promise<void> {
  const balancer = await Balancer.start({
    config: {
      listen: '127.0.0.1:0',
      controlListen: '127.0.0.1:0',
      adminListen: '127.0.0.1:0',
      // Worst case: anyone may create a group, and there is no token (the admin port, on
      // loopback, takes unauthenticated changes: the viewers vector flips strategies).
      autoCreateGroups: true,
      groups: ABUSE_GROUPS,
      security: { adminUnauthenticatedChanges: true },
    },
  });
  serveMeasured(() => ({ refusals: Object.fromEntries(balancer.refusals) }));
  send({ type: 'ready', data: balancer.address, control: balancer.controlAddress, admin: balancer.adminAddress });
}

main().catch(fatal);

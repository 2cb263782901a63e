/**
 * The abuse benchmark's balancer (Balancer.start in this process, so that
 * its heap, RSS, CPU and refusal counters can be read over IPC). Run with
 * --expose-gc: `gc` forces a full collection before a measurement.
 *   stats  process.memoryUsage(), process.cpuUsage(), balancer.refusals
 *   gc     global.gc() (twice: weak references, then what they held)
 */
import { Balancer, ConfigError } from '../../src/index';
import { fatal, send, serve } from './worker-util';

/** Groups of the bench: rebind clients' on-demand group, and a per-request group for the proxy vectors. */
const ABUSE_GROUPS = [
  { name: 'echo', granularity: 'on-demand', strategy: 'minimum_dispersion', reportIntervalMs: 500 },
  { name: 'stream', granularity: 'per-request', strategy: 'round_robin', reportIntervalMs: 500 },
];

async function main(): Promise<void> {
  const base = {
    listen: '127.0.0.1:0',
    controlListen: '127.0.0.1:0',
    adminListen: '127.0.0.1:0',
    // Worst case: anyone may create a group, and there is no control token.
    autoCreateGroups: true,
    groups: ABUSE_GROUPS,
  };
  let balancer: Balancer;
  let adminUnauthenticatedChanges = true;
  try {
    // Newer balancers refuse unauthenticated admin changes unless told to allow them;
    // older ones do not know the key (ConfigError) and allow them anyway.
    balancer = await Balancer.start({ config: { ...base, security: { adminUnauthenticatedChanges: true } } });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    adminUnauthenticatedChanges = false;
    balancer = await Balancer.start({ config: base });
  }
  serve((m) => {
    if (m.type === 'stats') {
      return { memory: process.memoryUsage(), cpu: process.cpuUsage(), refusals: Object.fromEntries(balancer.refusals) };
    }
    if (m.type === 'gc') {
      const gc = (globalThis as { gc?: () => void }).gc;
      if (gc === undefined) throw new Error('run with --expose-gc');
      gc();
      gc();
      return {};
    }
    throw new Error(`unknown request ${m.type}`);
  });
  send({ type: 'ready', data: balancer.address, control: balancer.controlAddress, admin: balancer.adminAddress, adminUnauthenticatedChanges });
}

main().catch(fatal);

/**
 * xDS (issue 13) with a real proxyless client: @grpc/grpc-js-xds, target
 * xds:///echo, bootstrap from rebind's own xdsBootstrap(). grpc-js-xds keeps
 * one xDS client (one node id, one bootstrap) per process, so this file runs
 * one balancer and one node.
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { xdsClientId } from '../../src/balancer/xds/ads';
import { xdsBootstrap } from '../../src/balancer/xds/bootstrap';
import type { Balancer } from '../../src/index';
import { EchoService, type EchoClient } from '../support/echo';
import { startBalancer, startReplica, stopReplica, unary, waitFor, type TestReplica } from '../support/cluster';

const NODE_ID = 'rebind-test-node-1';
let balancer: Balancer;
const replicas: TestReplica[] = [];
let stub: EchoClient;

beforeAll(async () => {
  // Reports every second: a member whose reports a loaded machine delays past 1.5 intervals is
  // suspect and leaves the offers, so the client's assignment would name one member or none
  // (at 250 ms this happened under CI load: 0 calls to A, or "priority policy has empty priority list").
  balancer = await startBalancer([{ name: 'echo', granularity: 'per-request', strategy: 'round_robin', reportIntervalMs: 1000 }]);
  for (const name of ['A', 'B']) replicas.push(await startReplica(balancer, name));
  process.env['GRPC_XDS_BOOTSTRAP_CONFIG'] = JSON.stringify(xdsBootstrap(balancer.controlAddress, 'echo', NODE_ID));
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  (require('@grpc/grpc-js-xds') as { register(): void }).register();
  stub = new EchoService('xds:///echo', grpc.credentials.createInsecure()) as unknown as EchoClient;
}, 30_000);

afterAll(async () => {
  stub?.close();
  for (const r of replicas) await stopReplica(r);
  await balancer?.stop();
});

describe('a grpc-js-xds client (xds:///echo, bootstrap from rebind xds-bootstrap)', () => {
  it('binds through ADS and calls the replicas directly, spread by its binding (per-request: every member)', async () => {
    const group = balancer.registry.groups.get('echo')!;
    // Both replicas have reported: the per-request binding names both.
    await waitFor(() => [...group.members.values()].every((m) => m.reports > 0), 10_000);
    const served: string[] = [];
    for (let i = 0; i < 40; i++) served.push((await unary(stub, { text: `x${i}` })).servedBy);
    expect(served.filter((s) => s === 'A').length).toBeGreaterThan(10);
    expect(served.filter((s) => s === 'B').length).toBeGreaterThan(10);
    // The balancer's data port saw none of these calls.
    expect(group.counters.proxiedCalls).toBe(0);
    expect(group.counters.forwards).toBe(0);
    expect(balancer.xds!.streamCount).toBe(1);
    expect(group.ledger.bindingOf(xdsClientId(NODE_ID))?.members).toHaveLength(2);
  });

  it('a member that drains is pushed out of the client\'s assignment at once: later calls all go to the other, none fails', async () => {
    const group = balancer.registry.groups.get('echo')!;
    const pushesBefore = balancer.xds!.pushes;
    let pushesAtRemoval = -1;
    balancer.registry.listen({ memberRemoved: () => void (pushesAtRemoval = balancer.xds!.pushes) });
    await replicas[1]!.replica.drain({ timeoutMs: 2000 });
    await waitFor(() => pushesAtRemoval >= 0, 5000, 10, 'B removed');
    // Pushed when B said it was draining, before it left.
    expect(pushesAtRemoval).toBeGreaterThan(pushesBefore);
    // The client applies the push asynchronously; give it a moment, then every call goes to A.
    await new Promise((r) => setTimeout(r, 300));
    const served: string[] = [];
    for (let i = 0; i < 20; i++) served.push((await unary(stub, { text: `d${i}` })).servedBy);
    expect(served.every((s) => s === 'A')).toBe(true);
    expect(group.counters.proxiedCalls).toBe(0);
  });
});

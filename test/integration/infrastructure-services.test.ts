/**
 * Standard infrastructure services (health, reflection, ORCA, channelz,
 * CSDS) are not claimed by a replica's group: two groups whose servers both
 * serve grpc.health.v1.Health share one balancer.
 */
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { attach, type AttachOptions } from '../../src/index';
import { startBalancer } from '../support/cluster';
import { startEchoServer } from '../support/echo';
import { healthImplementation, healthService, otherImplementation, otherService } from '../support/infra-services';

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups.length = 0;
});

/** A server with the health service and Echo (group "echo") or Other (group "other"), attached. */
async function replicaOf(balancerControl: string, group: 'echo' | 'other', extra: Partial<AttachOptions> = {}) {
  let server: grpc.Server;
  let address: string;
  if (group === 'echo') {
    ({ server, address } = await startEchoServer(`${group}-replica`));
  } else {
    server = new grpc.Server();
    server.addService(otherService, otherImplementation);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    address = `127.0.0.1:${port}`;
  }
  server.addService(healthService, healthImplementation);
  cleanups.push(() => server.forceShutdown());
  const replica = await attach(server, { balancer: balancerControl, group, address, ...extra });
  cleanups.push(() => replica.detach('test over'));
  return replica;
}

describe('infrastructure services', () => {
  it('two groups whose replicas both serve grpc.health.v1.Health attach to one balancer', async () => {
    const balancer = await startBalancer([{ name: 'echo' }, { name: 'other' }]);
    cleanups.push(() => balancer.stop());
    const a = await replicaOf(balancer.controlAddress, 'echo');
    const b = await replicaOf(balancer.controlAddress, 'other');
    expect(a.state).toBe('attached');
    expect(b.state).toBe('attached');
  });

  it('excludeServices: [] advertises the health service too, so a second group claiming it is refused', async () => {
    const balancer = await startBalancer([{ name: 'echo' }, { name: 'other' }]);
    cleanups.push(() => balancer.stop());
    await replicaOf(balancer.controlAddress, 'echo', { excludeServices: [] });
    await expect(replicaOf(balancer.controlAddress, 'other', { excludeServices: [] })).rejects.toMatchObject({
      code: grpc.status.FAILED_PRECONDITION,
      message: expect.stringContaining('/grpc.health.v1.Health/Check is already served by group "echo"'),
    });
  });
});

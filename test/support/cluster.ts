/**
 * Test harness: a balancer and Echo replicas on loopback (port 0), with
 * helpers to call them and to wait for conditions with generous bounds.
 */
import * as grpc from '@grpc/grpc-js';
import { Balancer, attach, type Replica } from '../../src/index';
import { echoImplementation, EchoService, startEchoServer, type EchoClient, type EchoStats } from './echo';
import type { EchoReply__Output } from '../../src/generated/rebind/test/EchoReply';
import type { EchoRequest } from '../../src/generated/rebind/test/EchoRequest';

export interface TestReplica {
  name: string;
  server: grpc.Server;
  address: string;
  stats: EchoStats;
  replica: Replica;
  implementation: ReturnType<typeof echoImplementation>;
}

export async function startBalancer(groups: Record<string, unknown>[], extra: Record<string, unknown> = {}): Promise<Balancer> {
  return Balancer.start({ config: { listen: '127.0.0.1:0', controlListen: '127.0.0.1:0', adminListen: '127.0.0.1:0', groups, ...extra } });
}

export async function startReplica(balancer: Balancer, name: string, group = 'echo', extra: { token?: string } = {}): Promise<TestReplica> {
  const stats: EchoStats = { calls: 0, byMethod: {} };
  const implementation = echoImplementation(name, stats);
  const { server, address } = await startEchoServer(name, implementation);
  const replica = await attach(server, { balancer: balancer.controlAddress, group, address, ...extra });
  return { name, server, address, stats, replica, implementation };
}

export async function stopReplica(r: TestReplica): Promise<void> {
  await r.replica.detach('test over');
  r.server.forceShutdown();
}

export function echoClient(address: string, options: grpc.ChannelOptions = {}): EchoClient {
  return new EchoService(address, grpc.credentials.createInsecure(), options) as unknown as EchoClient;
}

export function unary(client: EchoClient, request: EchoRequest, metadata = new grpc.Metadata(), options: grpc.CallOptions = {}): Promise<EchoReply__Output> {
  return new Promise((resolve, reject) => client.unary(request, metadata, options, (err, reply) => (err ? reject(err) : resolve(reply!))));
}

/** Polls `condition` every `stepMs` until it holds or `timeoutMs` passes. */
export async function waitFor(condition: () => boolean, timeoutMs = 10_000, stepMs = 20, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, stepMs));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

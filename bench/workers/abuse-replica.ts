/**
 * The abuse benchmark's replica: two Echo servers in one process on
 * 127.0.0.1:0, one attached to group "echo" (every method but ServerStream),
 * one to the per-request group "stream" (ServerStream only). Both serve
 * ORCA (attach's default). Run with --expose-gc.
 *   stats  process.memoryUsage(), process.cpuUsage(), the replicas' refusals
 *          (Replica.refusals, summed over both)
 *   gc     global.gc()
 */
import * as grpc from '@grpc/grpc-js';
import { attach, serverMethods } from '../../src/index';
import { ECHO_SERVER_STREAM_PATH, echoImplementation, echoService } from '../lib/echo';
import { fatal, flag, send, serveMeasured } from './worker-util';

async function server(name: string, counter: { served: number }): Promise<{ server: grpc.Server; address: string }> {
  const s = new grpc.Server();
  s.addService(echoService().service, echoImplementation(name, counter));
  const port = await new Promise<number>((resolve, reject) => s.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return { server: s, address: `127.0.0.1:${port}` };
}

async function main(): Promise<void> {
  const name = flag('name');
  const balancer = flag('balancer');
  const counter = { served: 0 };
  const echo = await server(name, counter);
  const stream = await server(name, counter);
  const echoMethods = serverMethods(echo.server).filter((m) => m.path !== ECHO_SERVER_STREAM_PATH);
  const streamMethods = serverMethods(stream.server).filter((m) => m.path === ECHO_SERVER_STREAM_PATH);
  const replicas = [
    await attach(echo.server, { balancer, group: 'echo', address: echo.address, methods: echoMethods }),
    await attach(stream.server, { balancer, group: 'stream', address: stream.address, methods: streamMethods }),
  ];
  serveMeasured(() => {
    const refusals: Record<string, number> = {};
    for (const r of replicas) for (const [k, v] of r.refusals) refusals[k] = (refusals[k] ?? 0) + v;
    return { refusals, served: counter.served };
  });
  send({ type: 'ready', echo: echo.address, stream: stream.address });
}

main().catch(fatal);

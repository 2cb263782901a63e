/**
 * A benchmark replica: the Prime service on 127.0.0.1:0, either plain
 * (no rebind) or attached to a balancer. Counts the calls it served, and
 * how many of them the balancer relayed (proxied); with --push-ms it pushes
 * both counts to the orchestrator periodically.
 */
import * as grpc from '@grpc/grpc-js';
import { attach } from '../../src/index';
import { primeImplementation, primeService } from '../lib/prime';
import { fatal, flag, send, serve } from './worker-util';

async function main(): Promise<void> {
  const name = flag('name');
  const mode = flag('mode', 'plain');
  const counter = { served: 0, proxied: 0, slowdown: 1 };
  const server = new grpc.Server();
  server.addService(primeService().service, primeImplementation(name, counter));
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  const address = `127.0.0.1:${port}`;
  if (mode === 'rebind') {
    // --balancer a,b,c: an HA set (the replica attaches to each).
    const balancers = flag('balancer').split(',');
    await attach(server, { balancer: balancers.length === 1 ? balancers[0]! : balancers, group: flag('group', 'bench'), address });
  }
  let draining = false;
  const pushMs = Number(flag('push-ms', '0'));
  if (pushMs > 0) setInterval(() => send({ type: 'served', t: Date.now(), served: counter.served, proxied: counter.proxied }), pushMs);
  serve(async (m) => {
    if (m.type === 'served') return { served: counter.served, proxied: counter.proxied };
    if (m.type === 'slow') {
      counter.slowdown = Number(m['factor']);
      return { slowdown: counter.slowdown };
    }
    if (m.type === 'drain') {
      // The server's own graceful shutdown: rebind drains first (see attach()).
      draining = true;
      const started = Date.now();
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      return { drainedMs: Date.now() - started, served: counter.served };
    }
    throw new Error(`unknown request ${m.type}${draining ? ' (draining)' : ''}`);
  });
  send({ type: 'ready', address });
}

main().catch(fatal);

import * as grpc from '@grpc/grpc-js';
import { attach } from 'rebind';
import { Echo, echoService } from './echo-service';

export async function startReplica(balancerControl: string, name: string) {
  const server = new grpc.Server();
  server.addService(Echo.service, echoService(name) as grpc.UntypedServiceImplementation); // your service, unchanged
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  // The one rebind line: join the balancer's "echo" group.
  const replica = await attach(server, { balancer: balancerControl, group: 'echo', address: `127.0.0.1:${port}` });
  return { server, replica };
}

import { Balancer } from 'rebind';
import { connect } from './client';
import { startReplica } from './replica';

export async function main(): Promise<string[]> {
  const balancer = await Balancer.start({
    config: {
      listen: '127.0.0.1:0', // clients target this
      controlListen: '127.0.0.1:0', // replicas attach here
      adminListen: '127.0.0.1:0', // metrics and dashboard
      groups: [{ name: 'echo', granularity: 'per-session', strategy: 'round_robin' }],
    },
  });
  const replicas = [await startReplica(balancer.controlAddress, 'A'), await startReplica(balancer.controlAddress, 'B')];
  const served: string[] = [];
  for (let i = 0; i < 4; i++) {
    const client = connect(balancer.address); // four clients
    const reply = await new Promise<string>((resolve, reject) => client.unary({ text: 'hi' }, (err, r) => (err ? reject(err) : resolve(r!.servedBy))));
    served.push(reply);
    client.close();
  }
  for (const r of replicas) r.server.forceShutdown(); // detaches from the balancer too
  await balancer.stop();
  return served;
}

if (require.main === module) {
  main().then((served) => console.log('served by', served.join(' ')), (err) => {
    console.error(err);
    process.exit(1);
  });
}

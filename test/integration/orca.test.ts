/**
 * ORCA: rebind replicas serve out-of-band load reports, so a standard
 * grpc-js client with weighted_round_robin balances over them.
 */
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { orcaServiceDefinition } from '../../src/replica/orca';
import { echoClient, startBalancer, startReplica, stopReplica, unary, type TestReplica } from '../support/cluster';

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups.length = 0;
});

async function replicas(n: number): Promise<TestReplica[]> {
  const balancer = await startBalancer([{ name: 'echo', reportIntervalMs: 200 }]);
  cleanups.push(() => balancer.stop());
  const out: TestReplica[] = [];
  for (let i = 0; i < n; i++) {
    const r = await startReplica(balancer, `R${i}`);
    cleanups.push(() => stopReplica(r));
    out.push(r);
  }
  return out;
}

describe('ORCA out-of-band load reports', () => {
  it('StreamCoreMetrics sends rps, eps, application and CPU utilization at the asked interval', async () => {
    const [r] = await replicas(1);
    const stub = echoClient(r!.address);
    cleanups.push(() => stub.close());
    const Orca = grpc.makeGenericClientConstructor(orcaServiceDefinition(), 'OpenRcaService');
    const orca = new Orca(r!.address, grpc.credentials.createInsecure()) as unknown as {
      StreamCoreMetrics(req: object): grpc.ClientReadableStream<Record<string, number>>;
      close(): void;
    };
    cleanups.push(() => orca.close());
    const reports: Record<string, number>[] = [];
    const call = orca.StreamCoreMetrics({ report_interval: { seconds: 0, nanos: 200_000_000 } });
    call.on('data', (m) => reports.push(m));
    call.on('error', () => undefined);
    const started = Date.now();
    while (Date.now() - started < 700) await unary(stub, { text: 'load' });
    call.cancel();
    expect(reports.length).toBeGreaterThanOrEqual(2);
    const busiest = reports.reduce((a, b) => (b.rps_fractional! > a.rps_fractional! ? b : a));
    expect(busiest.rps_fractional).toBeGreaterThan(50);
    expect(busiest.application_utilization).toBeGreaterThan(0);
    expect(busiest.application_utilization).toBeLessThanOrEqual(1);
    expect(busiest.eps).toBe(0);
    // The stream itself is not counted as a call in flight.
    expect(r!.replica.meter.inFlight).toBe(0);
  });

  it("a stock grpc-js weighted_round_robin client balances over rebind replicas", async () => {
    const rs = await replicas(2);
    const target = `ipv4:${rs.map((r) => r.address).join(',')}`;
    const client = echoClient(target, {
      'grpc.service_config': JSON.stringify({
        loadBalancingConfig: [{ weighted_round_robin: { enable_oob_load_report: true, oob_load_reporting_period: '0.2s', blackout_period: '0s', weight_update_period: '0.2s' } }],
      }),
    });
    cleanups.push(() => client.close());
    const served: Record<string, number> = {};
    for (let i = 0; i < 200; i++) {
      const reply = await unary(client, { text: `w${i}` });
      served[reply.servedBy] = (served[reply.servedBy] ?? 0) + 1;
    }
    expect(Object.keys(served).sort()).toEqual(['R0', 'R1']);
    expect(Math.min(...Object.values(served))).toBeGreaterThan(40);
  });
});

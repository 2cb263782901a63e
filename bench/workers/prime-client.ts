/**
 * A benchmark client: one channel of the kind under test, calling IsPrime.
 *   batch n      closed loop (one call in flight, the paper's Latency test);
 *                replies with an HDR histogram of latencies in µs
 *   open-loop    calls on a fixed schedule at `rate` for `durationMs`
 *                (effectiveness); pushes its re-bind and unbind events as
 *                they happen; replies with how late calls left against
 *                their schedule and the CPU the process used, so that a run
 *                shows whether one process could present the load it was
 *                asked for.
 *                With `record`, also every call ([start, µs, ok]) and, in
 *                rebind mode, every attempt sent to a replica ([epoch ms,
 *                replica address], from the policy's callSent event: the
 *                moment the attempt's stream was opened on a connection to
 *                that replica, whether or not it is ever answered)
 * Modes: direct (plain channel), rebind (clientOptions), grpc_round_robin,
 * grpc_wrr (weighted_round_robin fed by ORCA), plain (to a proxy), xds
 * (@grpc/grpc-js-xds: target xds:///<group>, bootstrap from
 * GRPC_XDS_BOOTSTRAP_CONFIG; grpc-js-xds keeps one xDS node per process, so
 * one xDS client per worker process).
 */
import * as grpc from '@grpc/grpc-js';
import { performance } from 'node:perf_hooks';
import { clientEvents, clientIdOf, clientOptions } from '../../src/index';
import { encodeHistogram, histogram } from '../lib/common';
import { PRIME, primeService, type PrimeClient } from '../lib/prime';
import { fatal, flag, send, serve } from './worker-util';

function channelOptions(mode: string): grpc.ChannelOptions {
  switch (mode) {
    case 'rebind':
      return clientOptions(process.argv.includes('--idempotent') ? { idempotent: ['bench.v1.Prime'] } : {});
    case 'grpc_round_robin':
      return { 'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }) };
    case 'grpc_wrr':
      return {
        'grpc.service_config': JSON.stringify({
          loadBalancingConfig: [{ weighted_round_robin: { enable_oob_load_report: true, oob_load_reporting_period: '1s', weight_update_period: '1s' } }],
        }),
      };
    case 'xds':
      // Registers the xds: resolver and the xDS LB policies; reads the bootstrap from the environment.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      (require('@grpc/grpc-js-xds') as { register(): void }).register();
      return {};
    case 'direct':
    case 'plain':
      return {};
    default:
      throw new Error(`unknown client mode ${mode}`);
  }
}

async function main(): Promise<void> {
  const mode = flag('mode');
  const target = flag('target');
  const options = channelOptions(mode);
  const Prime = primeService();
  const client = new Prime(target, grpc.credentials.createInsecure(), options) as unknown as PrimeClient;
  const clientId = clientIdOf(options);
  let bound = false;
  /** While an open loop records: [epoch ms, replica address] per attempt sent to a replica. */
  let sends: [number, string][] | null = null;
  clientEvents.add({
    callSent(to, id) {
      if (id === clientId && sends !== null) sends.push([Date.now(), to]);
    },
    forwarded(from, to, reason, id) {
      if (id !== clientId) return;
      if (!bound) {
        bound = true;
        return;
      }
      send({ type: 'rebind', t: Date.now(), from, to, reason });
    },
    unbound(from, reason, id) {
      if (id === clientId) send({ type: 'unbound', t: Date.now(), from, reason });
    },
  });

  const call = () =>
    new Promise<string>((resolve, reject) =>
      client.IsPrime({ number: PRIME }, { deadline: Date.now() + 30_000 }, (err, reply) => (err ? reject(err) : resolve(reply!.served_by))),
    );

  serve(async (m) => {
    if (m.type === 'first') return { servedBy: await call() };
    if (m.type === 'batch') {
      const n = Number(m['n']);
      const h = histogram();
      let errors = 0;
      const start = performance.now();
      for (let i = 0; i < n; i++) {
        const t0 = performance.now();
        try {
          await call();
          h.recordValue(Math.max(1, Math.round((performance.now() - t0) * 1000)));
        } catch {
          errors++;
        }
      }
      return { histogram: encodeHistogram(h), elapsedMs: performance.now() - start, errors };
    }
    if (m.type === 'open-loop') {
      const rate = Number(m['rate']);
      const durationMs = Number(m['durationMs']);
      // With `record`, every call's [start (epoch ms), latency µs, ok 1/0] comes back.
      const records: number[][] | null = m['record'] === true ? [] : null;
      sends = m['record'] === true ? [] : null;
      const period = 1000 / rate;
      const begin = performance.now();
      let sent = 0;
      let ok = 0;
      let failed = 0;
      const errors: string[] = [];
      const inFlight = new Set<Promise<void>>();
      // How late each call left against its slot in the schedule (µs): a client that cannot
      // keep up sends in bursts, and the load it presents is not the load asked for.
      const late = histogram();
      const cpuBefore = process.cpuUsage();
      while (performance.now() - begin < durationMs) {
        const due = Math.min(Math.floor((performance.now() - begin) / period) + 1, Math.ceil(durationMs / period));
        while (sent < due) {
          late.recordValue(Math.max(1, Math.round((performance.now() - begin - sent * period) * 1000)));
          sent++;
          const startedAt = Date.now();
          const t0 = performance.now();
          const p = call().then(
            () => {
              ok++;
              records?.push([startedAt, Math.round((performance.now() - t0) * 1000), 1]);
            },
            (err: grpc.ServiceError) => {
              failed++;
              records?.push([startedAt, Math.round((performance.now() - t0) * 1000), 0]);
              if (errors.length < 10) errors.push(`${grpc.status[err.code]}: ${err.details}`);
            },
          );
          inFlight.add(p);
          void p.finally(() => inFlight.delete(p));
        }
        await new Promise((r) => setTimeout(r, Math.max(1, begin + sent * period - performance.now())));
      }
      const elapsedMs = performance.now() - begin;
      await Promise.all([...inFlight]);
      const cpu = process.cpuUsage(cpuBefore);
      const attempts = sends;
      sends = null;
      return {
        sent,
        ok,
        failed,
        errors,
        lateMs: { p50: late.getValueAtPercentile(50) / 1000, p99: late.getValueAtPercentile(99) / 1000, max: late.maxValue / 1000 },
        cpuPct: Math.round(((cpu.user + cpu.system) / 1000 / elapsedMs) * 1000) / 10,
        ...(records !== null ? { records, sends: attempts } : {}),
      };
    }
    throw new Error(`unknown request ${m.type}`);
  });
  send({ type: 'ready', clientId });
}

main().catch(fatal);

/**
 * The abuse benchmark's legitimate clients, calling through the balancer at
 * a steady modest rate (open loop) from start to stop:
 *   rebind_unary   rebind clients (clientOptions()) calling Echo/Unary in group "echo"
 *   plain_unary    a plain gRPC client calling Echo/Unary (the balancer proxies it)
 *   plain_stream   a plain gRPC client calling Echo/ServerStream (4 small replies)
 *                  in the per-request group "stream"
 * Each call has a deadline of CALL_DEADLINE_MS.
 *   window   calls completed (and failed) since the previous window, by kind,
 *            with the p99 latency and a few distinct errors; starts a new window
 */
import * as grpc from '@grpc/grpc-js';
import { performance } from 'node:perf_hooks';
import { clientOptions } from '../../src/index';
import { histogram, summarize } from '../lib/common';
import { echoService, type EchoClient } from '../lib/echo';
import { fatal, flag, send, serve } from './worker-util';

/** A legitimate call that takes longer than this has failed. */
const CALL_DEADLINE_MS = 5000;

interface Window {
  calls: number;
  failures: number;
  byKind: Record<string, { calls: number; failures: number }>;
  errors: Set<string>;
  h: ReturnType<typeof histogram>;
}

function newWindow(): Window {
  return { calls: 0, failures: 0, byKind: {}, errors: new Set(), h: histogram() };
}

async function main(): Promise<void> {
  const target = flag('target');
  const rate = Number(flag('rate', '10'));
  const rebindClients = Number(flag('rebind-clients', '2'));
  const Echo = echoService();
  let window = newWindow();
  const record = (kind: string, t0: number, err: grpc.ServiceError | null) => {
    const k = (window.byKind[kind] ??= { calls: 0, failures: 0 });
    window.calls++;
    k.calls++;
    if (err === null) {
      window.h.recordValue(Math.max(1, Math.round((performance.now() - t0) * 1000)));
    } else {
      window.failures++;
      k.failures++;
      if (window.errors.size < 10) window.errors.add(`${kind}: ${grpc.status[err.code]}: ${err.details}`.slice(0, 300));
    }
  };
  const unary = (kind: string, client: EchoClient) => () => {
    const t0 = performance.now();
    client.Unary({ text: 'hello' }, { deadline: Date.now() + CALL_DEADLINE_MS }, (err) => record(kind, t0, err));
  };
  const stream = (kind: string, client: EchoClient) => () => {
    const t0 = performance.now();
    const call = client.ServerStream({ text: 'hello', count: 4 }, { deadline: Date.now() + CALL_DEADLINE_MS });
    let n = 0;
    call.on('data', () => n++);
    call.on('error', (err: grpc.ServiceError) => record(kind, t0, err));
    call.on('status', (s: grpc.StatusObject) => {
      if (s.code !== grpc.status.OK) return;
      if (n === 4) record(kind, t0, null);
      else record(kind, t0, { code: grpc.status.DATA_LOSS, details: `${n} of 4 replies`, name: 'short', message: 'short', metadata: new grpc.Metadata() });
    });
  };
  const make = (options: grpc.ChannelOptions) => new Echo(target, grpc.credentials.createInsecure(), options) as unknown as EchoClient;
  const callers: (() => void)[] = [];
  for (let i = 0; i < rebindClients; i++) callers.push(unary('rebind_unary', make(clientOptions())));
  // Distinct channel options so that each plain client has its own channel.
  callers.push(unary('plain_unary', make({ 'grpc.primary_user_agent': 'abuse-bench-plain-unary' })));
  callers.push(stream('plain_stream', make({ 'grpc.primary_user_agent': 'abuse-bench-plain-stream' })));
  // Staggered timers: each caller at `rate` calls/s.
  callers.forEach((call, i) => setTimeout(() => setInterval(call, 1000 / rate), (i * 1000) / rate / callers.length));
  serve((m) => {
    if (m.type === 'window') {
      const w = window;
      window = newWindow();
      return {
        calls: w.calls,
        failures: w.failures,
        byKind: w.byKind,
        errors: [...w.errors],
        ...(w.h.totalCount > 0 ? { p99_ms: summarize(w.h).p99_us / 1000 } : {}),
      };
    }
    throw new Error(`unknown request ${m.type}`);
  });
  send({ type: 'ready', callers: callers.length });
}

main().catch(fatal);

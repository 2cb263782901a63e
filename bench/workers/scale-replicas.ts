/**
 * Simulated replicas for the scale benchmark: each opens its own connection
 * and control stream to the balancer, says Hello (an address of its own that
 * nobody calls), then reports load every interval with a few top clients,
 * exactly as a real replica's runtime would.
 *   attach n     attach n more replicas (resolves once all are attached)
 *   stats        replicas attached, times one was lost (its stream ended; it re-attaches), reports sent so far, this process's CPU (µs, cumulative) and
 *                its event-loop delay p99 (ms) since the last stats (so the
 *                orchestrator can tell whether the simulation kept up)
 */
import * as grpc from '@grpc/grpc-js';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { controlProto } from '../../src/common/proto';
import type { BalancerMessage__Output } from '../../src/generated/rebind/v1/BalancerMessage';
import type { ControlClient } from '../../src/generated/rebind/v1/Control';
import { fatal, flag, send, serve } from './worker-util';

const balancer = flag('balancer');
const group = flag('group', 'scale');
const path = flag('path', '/scale.Service/Call');
let attached = 0;
let reports = 0;
/** How long a lost replica waits before attaching again (ms). */
const REATTACH_DELAY_MS = 1000;
/** Replicas whose control stream the balancer ended after they attached, and the first one's reason. */
let lost = 0;
let lastLoss: string | null = null;
const clients: ControlClient[] = [];
const eld = monitorEventLoopDelay({ resolution: 10 });
eld.enable();

function address(i: number): string {
  return `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:7000`;
}

function attachOne(index: number): Promise<void> {
  const Control = controlProto().rebind.v1.Control;
  // Its own subchannel pool: one TCP connection per replica, as separate processes would have.
  const client = new Control(balancer, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }) as unknown as ControlClient;
  clients.push(client);
  const call = client.attach();
  return new Promise((resolve, reject) => {
    let seq = 0;
    let live = false;
    let timer: NodeJS.Timeout | null = null;
    call.on('data', (m: BalancerMessage__Output) => {
      if (m.body !== 'attached' || live) return;
      live = true;
      attached++;
      const interval = m.attached!.reportIntervalMs;
      // Spread the replicas' report times over the interval, as independent processes would be.
      timer = setTimeout(() => {
        // One report object per replica, reused (only seq changes): the simulation's own cost per
        // report is mostly grpc-js encoding and writing it.
        const base = 80 + (index % 3);
        const report = {
          seq: 0,
          intervalMs: interval,
          callsPerS: base,
          inFlight: 1,
          latencyMs: 1,
          eventLoopUtilization: 0.2,
          cpuCores: 0.2,
          topClients: [0, 1, 2, 3].map((k) => ({ clientId: `sim-${index}-${k}-client`, callsPerS: base / 4 })),
          otherCallsPerS: 0,
        };
        const message = { report };
        timer = setInterval(() => {
          reports++;
          // Equal loads (within tolerance): the analyzer runs every interval but has nothing to move.
          report.seq = ++seq;
          call.write(message);
        }, interval);
      }, Math.random() * interval);
      resolve();
    });
    // A replica whose stream ends after it attached stops reporting, is counted as lost, and
    // attaches again a second later, as a real replica's runtime would.
    const gone = (why: string) => {
      if (timer !== null) clearInterval(timer);
      timer = null;
      if (live) {
        live = false;
        attached--;
        lost++;
        if (lastLoss === null) lastLoss = `replica ${index}: ${why}`;
        client.close();
        setTimeout(() => void attachOne(index).catch(() => undefined), REATTACH_DELAY_MS);
      }
    };
    call.on('end', () => gone('stream ended'));
    call.on('error', (err: grpc.ServiceError) => {
      gone(err.details);
      reject(new Error(`replica ${index}: ${err.details}`));
    });
    call.write({ hello: { protocolVersion: 1, group, address: address(index), methods: [{ path, kind: 'UNARY' }], replicaId: `sim-${index}` } });
  });
}

serve(async (m) => {
  if (m.type === 'attach') {
    const n = Number(m['n']);
    const start = attached;
    for (let i = 0; i < n; i += 50) {
      await Promise.all(Array.from({ length: Math.min(50, n - i) }, (_, k) => attachOne(start + i + k)));
    }
    return { attached };
  }
  if (m.type === 'stats') {
    const cpu = process.cpuUsage();
    const eldP99Ms = eld.percentile(99) / 1e6;
    eld.reset();
    return { attached, lost, first_loss: lastLoss, reports, cpu_us: cpu.user + cpu.system, eld_p99_ms: eldP99Ms };
  }
  throw new Error(`unknown request ${m.type}`);
});
send({ type: 'ready' });
process.on('uncaughtException', fatal);

/**
 * Simulated replicas for the scale benchmark: each opens its own connection
 * and control stream to the balancer, says Hello (an address of its own that
 * nobody calls), reports at once when attached and then every interval (at a
 * random phase) with a few top clients, as a real replica's runtime would.
 *   attach n     attach n more replicas (resolves once all are attached)
 *   stats        replicas attached, times one was lost (its stream ended; it re-attaches), reports sent so far, this process's CPU (µs, cumulative) and
 *                its event-loop delay p99 (ms) since the last stats (so the
 *                orchestrator can tell whether the simulation kept up); since the
 *                last attach: the loop delay's maximum and how late the report timers
 *                fired; and, of the replicas the balancer dropped for silence ("no
 *                load report for N ms"), how long each had been silent at its own
 *                end (its longest time attached without writing a report) and how
 *                many had never been silent for `deadlineMs` (the balancer's
 *                missedReports intervals: such a drop is the balancer's lag or the
 *                network's, not the replica's)
 */
import * as grpc from '@grpc/grpc-js';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
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
/** Drops for silence: the balancer's stated silence and the replica's own longest one while attached, ms. */
const silenceDrops: { balancerMs: number; replicaMs: number }[] = [];
let silenceDropCount = 0;
/** Kept for the percentiles (the count goes on past it). */
const MAX_SILENCE_DROPS_KEPT = 20_000;
/** How late the replicas' report timers fired, at most, since the last attach request (ms). */
let timerLateMaxMs = 0;
/** Event-loop delay since the last attach request (the whole attachment and what followed, not reset by stats). */
let attachEld = monitorEventLoopDelay({ resolution: 10 });

const percentile = (xs: number[], q: number): number | null => {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};

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
    let attachedAtMs = 0;
    let lastWriteMs: number | null = null;
    /** This replica's longest time without writing a report while attached (from its attachment, between reports, and now), ms. */
    let longestSilenceMs = 0;
    call.on('data', (m: BalancerMessage__Output) => {
      if (m.body !== 'attached' || live) return;
      live = true;
      attached++;
      attachedAtMs = performance.now();
      const interval = m.attached!.reportIntervalMs;
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
      const writeReport = () => {
        const nowMs = performance.now();
        longestSilenceMs = Math.max(longestSilenceMs, nowMs - (lastWriteMs ?? attachedAtMs));
        lastWriteMs = nowMs;
        reports++;
        // Equal loads (within tolerance): the analyzer runs every interval but has nothing to move.
        report.seq = ++seq;
        call.write(message);
      };
      // The first report goes at once, as the replica runtime's does (src/replica/attach.ts).
      writeReport();
      // Then the replicas' report times are spread over the interval, as independent processes' would be.
      const offsetMs = Math.random() * interval;
      timer = setTimeout(() => {
        writeReport();
        let dueMs = performance.now() + interval;
        timer = setInterval(() => {
          timerLateMaxMs = Math.max(timerLateMaxMs, performance.now() - dueMs);
          dueMs += interval;
          writeReport();
        }, interval);
      }, offsetMs);
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
        const stated = /no load report for (\d+) ms/.exec(why);
        if (stated !== null) {
          silenceDropCount++;
          if (silenceDrops.length < MAX_SILENCE_DROPS_KEPT) silenceDrops.push({ balancerMs: Number(stated[1]), replicaMs: Math.max(longestSilenceMs, performance.now() - (lastWriteMs ?? attachedAtMs)) });
        }
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
    attachEld.disable();
    attachEld = monitorEventLoopDelay({ resolution: 10 });
    attachEld.enable();
    timerLateMaxMs = 0;
    const start = attached;
    for (let i = 0; i < n; i += 50) {
      await Promise.all(Array.from({ length: Math.min(50, n - i) }, (_, k) => attachOne(start + i + k)));
    }
    return { attached };
  }
  if (m.type === 'stats') {
    const cpu = process.cpuUsage();
    const eldP99Ms = eld.percentile(99) / 1e6;
    const replicaSilence = silenceDrops.map((d) => d.replicaMs);
    const deadlineMs = Number(m['deadlineMs'] ?? 0);
    const out = {
      attached,
      lost,
      first_loss: lastLoss,
      reports,
      cpu_us: cpu.user + cpu.system,
      eld_p99_ms: eldP99Ms,
      eld_max_ms: eld.max / 1e6,
      // Since the last attach request (not reset by stats):
      attach_eld_max_ms: attachEld.max / 1e6,
      silence_drops: silenceDropCount,
      // Drops of replicas never silent for the balancer's deadline at their end: the balancer's lag (or the network's).
      silence_drops_never_silent: silenceDrops.filter((d) => d.replicaMs <= deadlineMs).length,
      silence_drop_replica_silent_p50_ms: percentile(replicaSilence, 0.5),
      silence_drop_replica_silent_max_ms: percentile(replicaSilence, 1),
      silence_drop_balancer_silent_p50_ms: percentile(silenceDrops.map((d) => d.balancerMs), 0.5),
      report_timer_late_max_ms: timerLateMaxMs,
    };
    eld.reset();
    return out;
  }
  throw new Error(`unknown request ${m.type}`);
});
send({ type: 'ready' });
process.on('uncaughtException', fatal);

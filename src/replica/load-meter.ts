/**
 * Per-replica load accounting, fed by the server interceptor on every call
 * and read once per report interval. The hot path (callStarted/callEnded) is
 * a few counter updates and one Map increment.
 */
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import type { LoadReport } from '../generated/rebind/v1/LoadReport';

/** A report's content, without the sequence number the session adds. */
export type LoadSnapshot = Omit<LoadReport, 'seq'> & { intervalMs: number; callsPerS: number };

export class LoadMeter {
  private started = 0;
  private completed = 0;
  private latencySumMs = 0;
  private forwardsSent = 0;
  /** Calls in flight now. */
  inFlight = 0;
  /** Calls started since the meter was created (never reset; ORCA reads deltas). */
  totalCalls = 0;
  /** Calls that ended with a non-OK status since the meter was created. */
  totalErrors = 0;
  private clients = new Map<string, number>();
  private lastElu: EventLoopUtilization;
  private lastCpu: NodeJS.CpuUsage;
  private lastSnapshotMs: number;

  constructor(nowMs: number) {
    this.lastSnapshotMs = nowMs;
    this.lastElu = performance.eventLoopUtilization();
    this.lastCpu = process.cpuUsage();
  }

  /** A call was admitted; `clientId` is set for direct rebind clients (movable). */
  callStarted(clientId: string | null): void {
    this.started++;
    this.totalCalls++;
    this.inFlight++;
    if (clientId !== null) this.clients.set(clientId, (this.clients.get(clientId) ?? 0) + 1);
  }

  callEnded(latencyMs: number, ok = true): void {
    this.inFlight--;
    this.completed++;
    this.latencySumMs += latencyMs;
    if (!ok) this.totalErrors++;
  }

  forwarded(): void {
    this.forwardsSent++;
  }

  /**
   * Closes the current interval and returns its figures. `topClients` is how
   * many busiest clients to list; `custom` is the application's own load.
   */
  snapshot(nowMs: number, topClients: number, custom: number | undefined, draining: boolean): LoadSnapshot {
    const intervalMs = Math.max(1, nowMs - this.lastSnapshotMs);
    const seconds = intervalMs / 1000;
    const elu = performance.eventLoopUtilization(this.lastElu);
    this.lastElu = performance.eventLoopUtilization();
    const cpu = process.cpuUsage(this.lastCpu);
    this.lastCpu = process.cpuUsage();
    const ranked = [...this.clients].sort((a, b) => b[1] - a[1]).slice(0, topClients);
    let attributed = 0;
    for (const [, count] of ranked) attributed += count;
    const snapshot: LoadSnapshot = {
      intervalMs: Math.round(intervalMs),
      callsPerS: this.started / seconds,
      inFlight: Math.max(0, this.inFlight),
      latencyMs: this.completed > 0 ? this.latencySumMs / this.completed : 0,
      eventLoopUtilization: Math.min(1, Math.max(0, elu.utilization)),
      cpuCores: (cpu.user + cpu.system) / 1000 / intervalMs,
      custom: custom ?? 0,
      hasCustom: custom !== undefined,
      topClients: ranked.map(([clientId, count]) => ({ clientId, callsPerS: count / seconds })),
      clientCount: this.clients.size,
      otherCallsPerS: Math.max(0, this.started - attributed) / seconds,
      forwards: this.forwardsSent,
      draining,
    };
    this.started = 0;
    this.completed = 0;
    this.latencySumMs = 0;
    this.forwardsSent = 0;
    this.clients = new Map();
    this.lastSnapshotMs = nowMs;
    return snapshot;
  }
}

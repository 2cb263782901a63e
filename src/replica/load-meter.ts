/**
 * Per-replica load accounting, fed by the server interceptor on every call
 * and read once per report interval. The hot path (callStarted/callEnded) is
 * a few counter updates and one Map increment.
 *
 * The per-client map is keyed by a value every caller chooses (its client
 * id), so it is capped: at most `maxTrackedClients` distinct clients per
 * interval. The interval only ends when a report is taken, which happens
 * only while the control stream is up; the cap is what bounds the map while
 * the replica is detached (however long that lasts).
 */
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import type { LoadReport } from '../generated/rebind/v1/LoadReport';
import type { RefusedCallback } from './refusals';

/** Distinct clients a meter tracks per report interval, clients (attach option `maxTrackedClients`). */
export const DEFAULT_MAX_TRACKED_CLIENTS = 10_000;
/** Accepted range of `maxTrackedClients`, clients. */
export const MAX_TRACKED_CLIENTS_RANGE = { min: 1, max: 1_000_000 } as const;

/** Bounds and hooks of a LoadMeter. */
export interface LoadMeterOptions {
  /**
   * Distinct client ids tracked per interval (default DEFAULT_MAX_TRACKED_CLIENTS).
   * Calls of further clients still count in the interval's totals, as
   * unattributed load (`otherCallsPerS`), and are counted as refusals.
   */
  maxTrackedClients?: number;
  /** Told of each call whose client could not be tracked (reason `meter_clients_untracked`). */
  refused?: RefusedCallback;
}

/** Checks a `maxTrackedClients` option; returns an error naming the field and its range, or null. */
export function checkMaxTrackedClients(value: unknown, field = 'maxTrackedClients'): string | null {
  const { min, max } = MAX_TRACKED_CLIENTS_RANGE;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    return `${field} must be an integer from ${min} to ${max} (clients), got ${String(value)}`;
  }
  return null;
}

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
  /** Tracked clients of the interval that understand weighted bindings (a subset of `clients`). */
  private setClients = new Set<string>();
  private readonly maxTrackedClients: number;
  private readonly refused: RefusedCallback | undefined;
  /** Built once: the hot path of a flood must not format strings. */
  private readonly untrackedDetail: string;
  private lastElu: EventLoopUtilization;
  private lastCpu: NodeJS.CpuUsage;
  private lastSnapshotMs: number;

  constructor(nowMs: number, options: LoadMeterOptions = {}) {
    const problem = options.maxTrackedClients === undefined ? null : checkMaxTrackedClients(options.maxTrackedClients);
    if (problem !== null) throw new RangeError(`rebind: ${problem}`);
    this.maxTrackedClients = options.maxTrackedClients ?? DEFAULT_MAX_TRACKED_CLIENTS;
    this.refused = options.refused;
    this.untrackedDetail = `a call not attributed to its client: ${this.maxTrackedClients} distinct clients are already tracked this interval (maxTrackedClients); it counts as other calls`;
    this.lastSnapshotMs = nowMs;
    this.lastElu = performance.eventLoopUtilization();
    this.lastCpu = process.cpuUsage();
  }

  /**
   * A call was admitted; `clientId` is set for direct rebind clients
   * (movable), `sets` when that client understands weighted bindings.
   */
  callStarted(clientId: string | null, sets = false): void {
    this.started++;
    this.totalCalls++;
    this.inFlight++;
    if (clientId === null) return;
    const count = this.clients.get(clientId);
    if (count !== undefined) this.clients.set(clientId, count + 1);
    else if (this.clients.size < this.maxTrackedClients) {
      this.clients.set(clientId, 1);
      if (sets) this.setClients.add(clientId);
    }
    // Counted in `started` all the same, so it shows up in otherCallsPerS.
    else this.refused?.('meter_clients_untracked', this.untrackedDetail);
  }

  /** Distinct clients tracked in the current interval (at most maxTrackedClients). */
  get trackedClients(): number {
    return this.clients.size;
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
      topClients: ranked.map(([clientId, count]) => ({ clientId, callsPerS: count / seconds, sets: this.setClients.has(clientId) })),
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
    this.setClients = new Set();
    this.lastSnapshotMs = nowMs;
    return snapshot;
  }
}

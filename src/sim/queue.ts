/**
 * A simulated replica's server: one server with a FIFO queue and a
 * deterministic service time (1000 / service rate ms per call, the rate read
 * when the call's service starts). With Poisson arrivals this is an M/D/1
 * queue; with the simulator's default fixed-schedule clients the arrivals are
 * superposed periodic streams, so queues only build when phases collide or
 * the replica is overloaded.
 *
 * A FIFO single server knows each call's completion time the moment it
 * arrives (start = max(arrival, previous completion)), so the queue needs no
 * completion events on the scheduler: completions are drained lazily, at the
 * next arrival or whenever someone reads the calls in flight. In-flight only
 * grows at arrivals, so the maximum observed right after each arrival is exact.
 */

/**
 * Service rate of a replica of relative speed 1, calls per second (1 ms per
 * call). A replica of speed s serves s × this. Chosen so that the built-in
 * scenarios' loads (100-400 calls/s per replica) run at 10-40 % utilisation
 * on a healthy replica, as a small gRPC service would, while a replica 20×
 * slower (50 calls/s) is overloaded by them.
 */
export const BASE_SERVICE_RATE_PER_S = 1000;

/** Service rate, calls/s, at a virtual time in ms. Must be > 0. */
export type ServiceRateAt = (tMs: number) => number;

export class ReplicaQueue {
  /** Arrival and completion times of the calls in flight, oldest first (FIFO: completions are in order too). */
  private arrivals: number[] = [];
  private completions: number[] = [];
  private head = 0;
  /** When the server finishes the last accepted call. */
  private busyUntilMs = -Infinity;
  /** Highest number of calls in flight (queued + in service) seen so far. */
  maxInFlight = 0;

  constructor(private readonly serviceRateAt: ServiceRateAt) {}

  /**
   * A call arrives at `nowMs`; returns its latency (wait + service), ms.
   * `onEnd` receives the latency of every earlier call completed by now.
   */
  arrive(nowMs: number, onEnd?: (latencyMs: number) => void): number {
    this.drain(nowMs, onEnd);
    const start = Math.max(nowMs, this.busyUntilMs);
    const end = start + 1000 / this.serviceRateAt(start);
    this.busyUntilMs = end;
    this.arrivals.push(nowMs);
    this.completions.push(end);
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlightNow());
    return end - nowMs;
  }

  /** Removes the calls completed by `nowMs` (completion ≤ now), oldest first, reporting each latency to `onEnd`. */
  drain(nowMs: number, onEnd?: (latencyMs: number) => void): void {
    while (this.head < this.completions.length && this.completions[this.head]! <= nowMs) {
      onEnd?.(this.completions[this.head]! - this.arrivals[this.head]!);
      this.head++;
    }
    // Compact now and then so a long run does not keep every call.
    if (this.head > 1024 && this.head * 2 > this.completions.length) {
      this.arrivals = this.arrivals.slice(this.head);
      this.completions = this.completions.slice(this.head);
      this.head = 0;
    }
  }

  /** Calls in flight (queued + in service) at `nowMs`, after draining the completed ones. */
  inFlight(nowMs: number, onEnd?: (latencyMs: number) => void): number {
    this.drain(nowMs, onEnd);
    return this.inFlightNow();
  }

  private inFlightNow(): number {
    return this.completions.length - this.head;
  }
}

/**
 * The p-th percentile (0 < p ≤ 100) of `sorted` (ascending), nearest-rank:
 * the smallest value with at least p % of the values at or below it. NaN
 * when empty.
 */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1]!;
}

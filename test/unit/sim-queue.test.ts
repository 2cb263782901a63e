/**
 * The simulator's replica queue (one server, FIFO, deterministic service
 * time) on tiny cases with exact numbers.
 */
import { describe, expect, it } from 'vitest';
import { percentile, ReplicaQueue } from '../../src/sim/queue';

describe('simulator queue: one server, FIFO, deterministic service', () => {
  it('3 calls arriving at once on a replica serving 10 calls/s take 100, 200 and 300 ms', () => {
    const q = new ReplicaQueue(() => 10);
    expect([q.arrive(0), q.arrive(0), q.arrive(0)]).toEqual([100, 200, 300]);
    expect(q.maxInFlight).toBe(3);
    expect(q.inFlight(0)).toBe(3);
    expect(q.inFlight(99)).toBe(3);
    expect(q.inFlight(100)).toBe(2); // the first completes at 100 ms
    expect(q.inFlight(250)).toBe(1);
    expect(q.inFlight(300)).toBe(0);
  });

  it('an idle server serves at once; a call arriving during service waits for the rest of it', () => {
    const q = new ReplicaQueue(() => 10);
    expect(q.arrive(1000)).toBe(100);
    expect(q.arrive(1040)).toBe(160); // waits 60 ms, then 100 ms of service
    expect(q.arrive(2000)).toBe(100);
    expect(q.maxInFlight).toBe(2);
  });

  it('reports each completed call once, in order, with its latency', () => {
    const q = new ReplicaQueue(() => 20);
    const ended: number[] = [];
    q.arrive(0);
    q.arrive(10);
    q.arrive(20);
    q.drain(100, (l) => ended.push(l)); // completions at 50, 100, 150
    expect(ended).toEqual([50, 90]);
    q.arrive(200, (l) => ended.push(l));
    expect(ended).toEqual([50, 90, 130]);
    expect(q.inFlight(200)).toBe(1);
  });

  it('reads the service rate when service starts: a call queued behind a slowdown is served slowly', () => {
    // 1000 calls/s until t = 1 ms, 50 calls/s (20x slower) after.
    const q = new ReplicaQueue((t) => (t < 1 ? 1000 : 50));
    expect(q.arrive(0)).toBe(1); // served in 1 ms, before the slowdown
    expect(q.arrive(0)).toBe(21); // starts at 1 ms: 20 ms of service
    expect(q.arrive(5)).toBe(36); // starts at 21 ms, ends at 41 ms
  });

  it('percentile is nearest-rank', () => {
    const s = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    expect(percentile(s, 50)).toBe(5);
    expect(percentile(s, 99)).toBe(10);
    expect(percentile(s, 10)).toBe(1);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([], 50)).toBeNaN();
  });
});

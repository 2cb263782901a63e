/**
 * The paper's effectiveness scenario in the deterministic simulator (real
 * strategy, analyzer, load table, meter and forward-table code on virtual
 * time): 4 replicas, 8 clients at 100/50/100/50/... calls/s, bound
 * round-robin (200/100/200/100).
 */
import { describe, expect, it } from 'vitest';
import { lateJoinerScenario, paperScenario, PAPER_VARIANTS } from '../../src/sim/scenarios';
import { parseScenarioFile, scenarioRuns } from '../../src/sim/scenario-file';
import { BUILTIN_SCENARIOS } from '../../src/sim/scenarios';
import { simulate, type SimScenario } from '../../src/sim/simulator';

const variant = (key: string) => PAPER_VARIANTS.find((v) => v.key === key)!;
const INTERVAL_MS = 1000;

describe("simulator: the paper's scenario", () => {
  const results = new Map(PAPER_VARIANTS.map((v) => [v.key, simulate(paperScenario(v, { reportIntervalMs: INTERVAL_MS }))]));

  it('prints the re-binds of each variant', () => {
    const lines = [...results].map(([key, r]) => `${key.padEnd(30)} re-binds ${String(r.rebinds).padStart(3)}  convergence ${r.convergenceS ?? '-'} s  steady max/mean ${r.steady.max_over_mean}`);
    console.log(`paper scenario, report interval ${INTERVAL_MS} ms:\n${lines.join('\n')}`);
    expect(lines).toHaveLength(PAPER_VARIANTS.length);
  });

  it('minimum_dispersion: every replica within 150 ± 10 % by the end of the 3rd interval, then no re-bind for 60 s', () => {
    const r = results.get('on_demand_minimum_dispersion')!;
    const third = r.intervalLoads[2]!;
    for (const load of third) expect(Math.abs(load - 150)).toBeLessThanOrEqual(15);
    const later = r.rebindTimesMs.filter((t) => t > 3 * INTERVAL_MS);
    expect(later).toEqual([]);
    expect(r.series[r.series.length - 1]![0]).toBeGreaterThanOrEqual(63);
    expect(r.rebinds).toBe(4); // two swaps
  });

  it('load_minimum converges within 10 intervals', () => {
    const r = results.get('on_demand_load_minimum')!;
    expect(r.convergenceS).not.toBeNull();
    expect(r.convergenceS!).toBeLessThanOrEqual((10 * INTERVAL_MS) / 1000);
    expect(r.steady.max_over_mean).toBeLessThanOrEqual(1.05);
  });

  it('per-session round_robin keeps the 200/100/200/100 split', () => {
    const r = results.get('per_session_round_robin')!;
    for (const loads of r.intervalLoads) expect(loads).toEqual([200, 100, 200, 100]);
    expect(r.rebinds).toBe(0);
  });

  it.each([1, 2, 3, 4, 5, 6, 7, 8])('minimum_dispersion holds for seed %i and report intervals of 250 ms and 5 s', (seed) => {
    for (const interval of [250, 5000]) {
      const r = simulate(paperScenario(variant('on_demand_minimum_dispersion'), { seed, reportIntervalMs: interval, durationMs: 3 * interval + 60_000 }));
      for (const load of r.intervalLoads[2]!) expect(Math.abs(load - 150)).toBeLessThanOrEqual(15);
      expect(r.rebindTimesMs.filter((t) => t > 3 * interval)).toEqual([]);
    }
  });

  it('is deterministic: the same seed gives the same run', () => {
    const a = simulate(paperScenario(variant('on_demand_load_minimum'), { seed: 5 }));
    const b = simulate(paperScenario(variant('on_demand_load_minimum'), { seed: 5 }));
    expect(a.series).toEqual(b.series);
    expect(a.rebindTimesMs).toEqual(b.rebindTimesMs);
  });
});

describe('simulator: a replica joining later', () => {
  it('minimum_dispersion moves exactly two of four equal clients to it, once', () => {
    const r = simulate(lateJoinerScenario());
    expect(r.rebinds).toBe(2);
    const last = r.intervalLoads[r.intervalLoads.length - 1]!;
    expect(last).toEqual([100, 100]);
  });
});

describe('simulator: workloads (rate changes, speeds, queues)', () => {
  const base = (over: Partial<SimScenario>): SimScenario => ({
    name: 't',
    description: '',
    group: { granularity: 'per-session', strategy: 'round_robin', reportIntervalMs: 1000 },
    replicas: [{ name: 'r1' }],
    clients: [{ rate: 100 }],
    initialBinding: 'balancer',
    durationMs: 10_000,
    seed: 1,
    ...over,
  });

  it('a rate change takes effect at its time: 100 calls/s for 4 s, idle 2 s, 50 calls/s for 4 s', () => {
    const r = simulate(base({ clients: [{ rate: 100, rateChanges: [{ atMs: 4000, rate: 0 }, { atMs: 6000, rate: 50 }] }] }));
    expect(r.intervalLoads.map((l) => l[0])).toEqual([100, 100, 100, 100, 0, 0, 50, 50, 50, 50]);
    expect(r.latency.calls).toBe(600);
  });

  it('a replica 20x slower (50 calls/s) sent 100 calls/s queues 50 more calls a second', () => {
    const r = simulate(base({ replicas: [{ name: 'r1', speed: 0.05 }], durationMs: 4000 }));
    // 400 calls; the last leaves at 400 × 20 ms = 8 s, and at 4 s half of them are still waiting.
    expect(r.latency.calls).toBe(400);
    expect(r.maxInFlight[0]).toBeGreaterThanOrEqual(199);
    expect(r.maxInFlight[0]).toBeLessThanOrEqual(201);
    expect(r.latency.maxMs).toBeGreaterThan(3990);
    expect(r.latency.p50Ms).toBeGreaterThan(900);
  });

  it('speed 1 serves a call in 1 ms; speed 2 in 0.5 ms', () => {
    expect(simulate(base({})).latency).toEqual({ calls: 1000, p50Ms: 1, p99Ms: 1, maxMs: 1 });
    expect(simulate(base({ replicas: [{ name: 'r1', speed: 2 }] })).latency.maxMs).toBe(0.5);
  });

  it('Poisson arrivals queue now and then, and the same seed gives the same run', () => {
    const s = base({ clients: [{ rate: 500, arrivals: 'poisson' }] });
    const a = simulate(s);
    expect(a.latency.p99Ms).toBeGreaterThan(1);
    expect(a.maxInFlight[0]).toBeGreaterThan(1);
    expect(simulate(s)).toEqual(a);
    expect(simulate({ ...s, seed: 2 }).latency).not.toEqual(a.latency);
  });
});

describe('simulator: the built-in workloads, as they run today', () => {
  const run = (name: string, key: string) => {
    const p = parseScenarioFile(BUILTIN_SCENARIOS[name]);
    if (!p.ok) throw new Error(p.errors.join());
    return simulate(scenarioRuns(p.value).find((r) => r.key === key)!.scenario);
  };

  it('few-heavy: weighted bindings reach max/mean <= 1.10 within 3 report intervals, each client on the 4 members its load needs, no re-binding for the next 60 s; whole-client bindings stay at 4', () => {
    const r = run('few-heavy', 'on_demand_minimum_dispersion');
    expect(r.convergenceS).not.toBeNull();
    expect(r.convergenceS!).toBeLessThanOrEqual(3);
    for (const loads of r.intervalLoads.slice(3)) expect(Math.max(...loads) / (loads.reduce((a, b) => a + b, 0) / loads.length)).toBeLessThanOrEqual(1.1);
    // One re-binding per client (its spread), both before convergence; none in the 60 s after.
    expect(r.rebinds).toBe(2);
    expect(r.rebindTimesMs.every((t) => t <= r.convergenceS! * 1000)).toBe(true);
    expect(r.durationMs - r.convergenceS! * 1000).toBeGreaterThanOrEqual(60_000);
    expect(r.finalBindingSizes).toEqual([4, 4]);
    expect(run('few-heavy', 'on_demand_minimum_dispersion_whole').steady.max_over_mean).toBe(4);
    expect(run('few-heavy', 'per_request_round_robin').steady.max_over_mean).toBeLessThan(1.01);
  });

  it('heavy-hitters: weighted bindings go below the whole-client floor of 2.00, to balance; k = 1 stays at the floor', () => {
    // The planner stops once every member is within its tolerance (10 %) of the mean.
    expect(run('heavy-hitters', 'on_demand_minimum_dispersion').steady.max_over_mean).toBeLessThan(1.1);
    expect(run('heavy-hitters', 'on_demand_minimum_dispersion_whole').steady.max_over_mean).toBeCloseTo(2, 3);
  });

  it('slow-replica: clients give r1 up at the stall bound and the balancer sets it aside, so its queue stays short (it grew to thousands of calls on calls/s alone)', () => {
    const r = run('slow-replica', 'on_demand_minimum_dispersion');
    expect(r.givenUp).toBeGreaterThanOrEqual(2);
    expect(r.maxInFlight[0]).toBeLessThan(100);
    expect(r.latency.p99Ms).toBeLessThan(1000);
    const p2c = run('slow-replica', 'per_request_p2c_in_flight');
    expect(p2c.maxInFlight[0]).toBeLessThan(100);
  });
});

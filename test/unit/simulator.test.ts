/**
 * The paper's effectiveness scenario in the deterministic simulator (real
 * strategy, analyzer, load table, meter and forward-table code on virtual
 * time): 4 replicas, 8 clients at 100/50/100/50/... calls/s, bound
 * round-robin (200/100/200/100).
 */
import { describe, expect, it } from 'vitest';
import { lateJoinerScenario, paperScenario, PAPER_VARIANTS } from '../../src/sim/scenarios';
import { simulate } from '../../src/sim/simulator';

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

/**
 * The adaptive stall bound of a one-member binding (issue 12): the channel's
 * baseline of calls in flight, an average over call starts with weights
 * e^(-age / tau), and the bound max(floor, factor x baseline) capped by
 * stallInFlight. Times are passed in, so every number here is exact.
 */
import { describe, expect, it } from 'vitest';
import { clientOptions } from '../../src/interceptors/client-options';
import {
  DEFAULT_STALL_FACTOR,
  DEFAULT_STALL_IN_FLIGHT_FLOOR,
  InFlightBaseline,
  RebindLbConfig,
  STALL_BASELINE_TAU_MS,
  stallLimit,
} from '../../src/interceptors/client-policy';

describe('InFlightBaseline', () => {
  it('is 0 before any call, the plain mean of samples taken at one instant, and decays older samples by e^(-age/tau)', () => {
    const b = new InFlightBaseline(1000);
    expect(b.value).toBe(0);
    b.sample(2, 0);
    expect(b.value).toBe(2);
    b.sample(4, 0);
    expect(b.value).toBe(3);
    // One tau later both weigh e^-1: (6/e + 0) / (2/e + 1) = 6 / (2 + e).
    b.sample(0, 1000);
    expect(b.value).toBeCloseTo(6 / (2 + Math.E), 12);
    expect(b.value).toBeCloseTo(1.27165, 5);
  });

  it('after a quiet spell the next sample counts almost alone', () => {
    const b = new InFlightBaseline(5000);
    for (let i = 0; i < 100; i++) b.sample(1, 0);
    expect(b.value).toBe(1);
    // 100 s later (20 tau): the old weight is 100 x e^-20 = 2.06e-7.
    b.sample(10, 100_000);
    expect(b.value).toBeCloseTo((100 * Math.exp(-20) + 10) / (100 * Math.exp(-20) + 1), 12);
    expect(b.value).toBeGreaterThan(9.99999);
  });

  it('a clock that steps back decays nothing', () => {
    const b = new InFlightBaseline(1000);
    b.sample(2, 5000);
    b.sample(4, 4000);
    expect(b.value).toBe(3);
    // Measured from the latest time seen (5000), not from the step back.
    b.sample(0, 6000);
    expect(b.value).toBeCloseTo(6 / (2 + Math.E), 12);
  });

  it('a light channel that hangs at 50 calls/s: the bound stays at the floor and the 17th call after the hang finds it reached', () => {
    const b = new InFlightBaseline(STALL_BASELINE_TAU_MS);
    const config = new RebindLbConfig(4);
    // 20 s of 50 calls/s each finding one call in flight (the previous one still finishing).
    let t = 0;
    for (; t < 20_000; t += 20) b.sample(1, t);
    expect(b.value).toBe(1);
    // Then nothing completes: the k-th call finds k - 1 + 1 = k in flight (the one before the hang too).
    let gaveUpAt = -1;
    for (let k = 1; k <= 40; k++, t += 20) {
      const inFlight = k;
      if (inFlight >= stallLimit(config, b.value)) {
        gaveUpAt = k;
        break;
      }
      b.sample(inFlight, t);
    }
    expect(gaveUpAt).toBe(DEFAULT_STALL_IN_FLIGHT_FLOOR);
    // What the pile-up did to the baseline: samples 1..15 after 1000 samples of 1 (weights of 50 calls per 20 ms step).
    let sum = 0;
    let weight = 0;
    for (let i = 0; i < 1000 + 15; i++) {
      const age = (1000 + 15 - 1 - i) * 20;
      const w = Math.exp(-age / STALL_BASELINE_TAU_MS);
      sum += w * (i < 1000 ? 1 : i - 999);
      weight += w;
    }
    expect(b.value).toBeCloseTo(sum / weight, 9);
    // About (250 x 1 + 120) / (250 + 15): the last 5 s weigh some 250 calls of 1 in flight.
    expect(b.value).toBeCloseTo(1.41923, 5);
  });

  it('a channel that multiplexes 300 calls keeps a bound of 1200, and a cold burst of 300 calls never reaches its bound', () => {
    const config = new RebindLbConfig(4);
    const steady = new InFlightBaseline();
    for (let t = 0; t < 10_000; t += 1) steady.sample(300, t);
    expect(steady.value).toBeCloseTo(300, 9);
    expect(stallLimit(config, steady.value)).toBeCloseTo(1200, 6);
    // Cold: the k-th call finds k - 1 in flight; the baseline is then the mean of 0..k-2 = (k-2)/2.
    const cold = new InFlightBaseline();
    for (let k = 1; k <= 300; k++) {
      expect(k - 1).toBeLessThan(stallLimit(config, cold.value));
      cold.sample(k - 1, 0);
    }
    expect(cold.value).toBe(149.5);
  });
});

describe('stallLimit: how the options combine', () => {
  const config = (stallInFlight: number | null, floor = DEFAULT_STALL_IN_FLIGHT_FLOOR, factor = DEFAULT_STALL_FACTOR) => ({ stallInFlight, stallInFlightFloor: floor, stallFactor: factor });

  it('is max(floor, factor x baseline) without a cap', () => {
    expect(stallLimit(config(null), 0)).toBe(16);
    expect(stallLimit(config(null), 3.9)).toBe(16);
    expect(stallLimit(config(null), 10)).toBe(40);
    expect(stallLimit(config(null, 2, 8), 1.5)).toBe(12);
  });

  it('is capped by stallInFlight when set, whatever the baseline', () => {
    expect(stallLimit(config(4), 0)).toBe(4);
    expect(stallLimit(config(100), 300)).toBe(100);
    expect(stallLimit(config(1000), 10)).toBe(40);
  });
});

describe('validation', () => {
  it('names the field and its range', () => {
    expect(() => RebindLbConfig.createFromJson({ stallFactor: 1.5 })).toThrow('rebind config stallFactor is 1.5; it must be a number 2..1000');
    expect(() => RebindLbConfig.createFromJson({ stallInFlightFloor: 0 })).toThrow('rebind config stallInFlightFloor is 0; it must be an integer 1..100000');
    expect(() => RebindLbConfig.createFromJson({ stallInFlight: 0 })).toThrow('rebind config stallInFlight is 0; it must be an integer 1..100000 (or absent: no cap)');
    expect(() => clientOptions({ stallFactor: 1 })).toThrow('rebind clientOptions: stallFactor is 1; it must be a number 2..1000');
    expect(() => clientOptions({ stallInFlightFloor: 2.5 })).toThrow('rebind clientOptions: stallInFlightFloor is 2.5; it must be an integer 1..100000');
  });

  it('defaults: no cap, floor 16, factor 4; set values survive the service config round trip', () => {
    const d = RebindLbConfig.createFromJson({});
    expect([d.stallInFlight, d.stallInFlightFloor, d.stallFactor]).toEqual([null, 16, 4]);
    const c = RebindLbConfig.createFromJson((new RebindLbConfig(4, null, 1000, 50, 0, 8, 6).toJsonObject() as { rebind: unknown }).rebind);
    expect([c.stallInFlight, c.stallInFlightFloor, c.stallFactor]).toEqual([50, 8, 6]);
  });
});

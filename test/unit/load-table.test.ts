import { describe, expect, it } from 'vitest';
import { dampen, shiftLoad } from '../../src/balancer/load-table';

describe('dampening: d * previous + (1 - d) * reported, once per report', () => {
  it('starts from the first report', () => {
    expect(dampen(undefined, 120, 0.5)).toBe(120);
  });

  it('has memory: d = 0.5 over reports 100, 200, 200, 200', () => {
    let value = dampen(undefined, 100, 0.5); // 100
    value = dampen(value, 200, 0.5); // 0.5*100 + 0.5*200 = 150
    expect(value).toBe(150);
    value = dampen(value, 200, 0.5); // 0.5*150 + 0.5*200 = 175
    expect(value).toBe(175);
    value = dampen(value, 200, 0.5); // 187.5
    expect(value).toBe(187.5);
  });

  it('d = 0 follows the reports exactly (TAO default)', () => {
    expect(dampen(500, 10, 0)).toBe(10);
  });

  it('d = 0.9 after a step from 0 to 100: 10, 19, 27.1', () => {
    let value = dampen(undefined, 0, 0.9);
    value = dampen(value, 100, 0.9);
    expect(value).toBeCloseTo(10, 10);
    value = dampen(value, 100, 0.9);
    expect(value).toBeCloseTo(19, 10);
    value = dampen(value, 100, 0.9);
    expect(value).toBeCloseTo(27.1, 10);
  });

  it('shifts load between two members without going below zero', () => {
    expect(shiftLoad(200, 100, 50)).toEqual([150, 150]);
    expect(shiftLoad(30, 0, 50)).toEqual([0, 50]);
  });
});

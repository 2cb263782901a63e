import { describe, expect, it } from 'vitest';
import { availableCpus, cgroupQuotaCpus, oneCoreAdvice, ONE_CORE_NODE_FLAGS } from '../../src/common/runtime';

const files = (entries: Record<string, string>) => (file: string) => entries[file] ?? null;

describe('one-core runtime advice', () => {
  it('reads the cgroup v2 quota, v1 when v2 is absent, and none when unlimited', () => {
    expect(cgroupQuotaCpus(files({ '/sys/fs/cgroup/cpu.max': '150000 100000\n' }))).toBe(1.5);
    expect(cgroupQuotaCpus(files({ '/sys/fs/cgroup/cpu.max': 'max 100000\n' }))).toBeNull();
    expect(cgroupQuotaCpus(files({ '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '50000', '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000' }))).toBe(0.5);
    expect(cgroupQuotaCpus(files({ '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '-1', '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000' }))).toBeNull();
    expect(cgroupQuotaCpus(files({}))).toBeNull();
  });

  it('counts the smaller of the affinity mask and the quota, a fraction of a CPU as one', () => {
    expect(availableCpus(files({}), 8)).toBe(8);
    expect(availableCpus(files({ '/sys/fs/cgroup/cpu.max': '100000 100000' }), 8)).toBe(1);
    expect(availableCpus(files({ '/sys/fs/cgroup/cpu.max': '50000 100000' }), 8)).toBe(1);
    expect(availableCpus(files({ '/sys/fs/cgroup/cpu.max': '250000 100000' }), 8)).toBe(3);
    expect(availableCpus(files({ '/sys/fs/cgroup/cpu.max': '400000 100000' }), 1)).toBe(1);
  });

  it('advises the one-core flags only on one CPU without single-threaded GC', () => {
    const advice = oneCoreAdvice(1, []);
    expect(advice).toContain(ONE_CORE_NODE_FLAGS.join(' '));
    expect(oneCoreAdvice(1, ['--single-threaded-gc'])).toBeNull();
    expect(oneCoreAdvice(2, [])).toBeNull();
  });
});

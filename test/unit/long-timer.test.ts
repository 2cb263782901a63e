import { afterEach, describe, expect, it, vi } from 'vitest';
import { MAX_TIMER_DELAY_MS, setLongTimeout } from '../../src/common/long-timer';
import { encodeGrpcTimeoutCapped, parseGrpcTimeoutMs } from '../../src/common/grpc-http2';

afterEach(() => {
  vi.useRealTimers();
});

describe('setLongTimeout', () => {
  it('waits the whole of a delay beyond 2^31-1 ms (600 hours), where setTimeout would fire at once', () => {
    vi.useFakeTimers();
    const fired = vi.fn();
    const delayMs = 600 * 3_600_000;
    setLongTimeout(fired, delayMs);
    vi.advanceTimersByTime(MAX_TIMER_DELAY_MS);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(delayMs - MAX_TIMER_DELAY_MS - 1);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fired).toHaveBeenCalledTimes(1);
  });

  it('fires a short delay on time, and clear() cancels a long one in any of its legs', () => {
    vi.useFakeTimers();
    const short = vi.fn();
    setLongTimeout(short, 50);
    vi.advanceTimersByTime(50);
    expect(short).toHaveBeenCalledTimes(1);
    const long = vi.fn();
    const timer = setLongTimeout(long, 3 * MAX_TIMER_DELAY_MS);
    vi.advanceTimersByTime(MAX_TIMER_DELAY_MS + 10);
    timer.clear();
    vi.advanceTimersByTime(3 * MAX_TIMER_DELAY_MS);
    expect(long).not.toHaveBeenCalled();
  });

  it('never fires for an infinite delay', () => {
    vi.useFakeTimers();
    const fired = vi.fn();
    setLongTimeout(fired, Number.POSITIVE_INFINITY);
    vi.advanceTimersByTime(10 * MAX_TIMER_DELAY_MS);
    expect(fired).not.toHaveBeenCalled();
  });
});

describe('encodeGrpcTimeoutCapped', () => {
  it('keeps a timeout a 32-bit timer holds, and caps a longer one below 2^31 ms in at most 8 digits', () => {
    expect(encodeGrpcTimeoutCapped(1500)).toBe('1500m');
    const capped = encodeGrpcTimeoutCapped(600 * 3_600_000);
    expect(capped).toMatch(/^[0-9]{1,8}[mS]$/);
    const back = parseGrpcTimeoutMs(capped)!;
    expect(back).toBeLessThanOrEqual(MAX_TIMER_DELAY_MS);
    expect(back).toBeGreaterThan(MAX_TIMER_DELAY_MS - 1000);
  });
});

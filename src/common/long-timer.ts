/**
 * Timers for delays that may exceed what setTimeout can hold. Node's
 * setTimeout takes at most 2^31-1 ms (about 24.8 days); a longer delay is
 * clamped to 1 ms with a warning, so a deadline of "600H" taken from the
 * network would fire at once. Delays that come from a remote party go
 * through here.
 */

/** Longest delay one setTimeout can hold, ms. */
export const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

/** A pending long timer; `clear()` cancels it (idempotent). */
export interface LongTimer {
  clear(): void;
}

/**
 * Calls `fn` once after `delayMs` (any finite or infinite non-negative
 * number; Infinity never fires), by chaining setTimeouts of at most
 * MAX_TIMER_DELAY_MS. `unref`: the timer does not keep the process alive.
 */
export function setLongTimeout(fn: () => void, delayMs: number, unref = false): LongTimer {
  let handle: NodeJS.Timeout | null = null;
  let cleared = false;
  const safeDelay = Number.isNaN(delayMs) || delayMs < 0 ? 0 : delayMs;
  if (safeDelay === Number.POSITIVE_INFINITY) return { clear: () => undefined };
  const dueAtMs = Date.now() + safeDelay;
  const arm = (waitMs: number) => {
    handle = setTimeout(() => {
      handle = null;
      if (cleared) return;
      const leftMs = dueAtMs - Date.now();
      if (leftMs > 0 && waitMs === MAX_TIMER_DELAY_MS) arm(Math.min(leftMs, MAX_TIMER_DELAY_MS));
      else fn();
    }, waitMs);
    if (unref) handle.unref();
  };
  arm(Math.min(safeDelay, MAX_TIMER_DELAY_MS));
  return {
    clear: () => {
      cleared = true;
      if (handle !== null) clearTimeout(handle);
      handle = null;
    },
  };
}

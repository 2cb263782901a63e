/**
 * Warn lines for refused input, rate-limited: a party sending a million bad
 * messages must not become a million log lines (CPU, disk, and the
 * operator's attention). At most one line per key per interval goes out; it
 * carries how many lines were suppressed since the last one. Keys are
 * reasons named in the code (a fixed set), never values from the network.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from './logger';

/** Least time between two warn lines for the same key, ms. */
export const WARN_INTERVAL_MS = 1000;

export class WarnLimiter {
  private readonly lastLoggedMs = new Map<string, number>();
  private readonly suppressed = new Map<string, number>();

  constructor(
    private readonly log: Pick<Logger, 'warn'>,
    private readonly intervalMs = WARN_INTERVAL_MS,
    private readonly nowMs: () => number = () => performance.now(),
  ) {}

  /** Logs `message` at warn with `fields`, unless a line for `key` went out less than an interval ago. */
  warn(key: string, fields: Record<string, unknown>, message: string): void {
    const now = this.nowMs();
    const last = this.lastLoggedMs.get(key);
    if (last !== undefined && now - last < this.intervalMs) {
      this.suppressed.set(key, (this.suppressed.get(key) ?? 0) + 1);
      return;
    }
    const suppressed = this.suppressed.get(key) ?? 0;
    this.suppressed.delete(key);
    this.lastLoggedMs.set(key, now);
    this.log.warn(suppressed > 0 ? { ...fields, suppressed } : fields, message);
  }
}

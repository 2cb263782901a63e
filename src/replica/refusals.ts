/**
 * The replica's count of refused input (reason -> count), the replica-side
 * twin of the balancer's `refusals`. The ORCA service and the load meter
 * call `refused(reason, detail)` when one of their bounds bites; each call
 * is counted and logged at warn, at most one line per reason per
 * REFUSAL_LOG_INTERVAL_MS (a flood must not become a log flood), with the
 * number of refusals the suppressed lines would have reported.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from '../common/logger';
import { WarnLimiter, WARN_INTERVAL_MS } from '../common/warn-limiter';

/** Least time between two warn lines for the same reason, ms. */
export const REFUSAL_LOG_INTERVAL_MS = WARN_INTERVAL_MS;

/** Called when a bound bites: `reason` is the counter's key, `detail` says what was refused and why. */
export type RefusedCallback = (reason: string, detail: string) => void;

/** Counts refusals by reason and logs them, rate-limited (see ../common/warn-limiter.ts). */
export class RefusalCounter {
  /** Refusals so far, by reason. */
  readonly counts = new Map<string, number>();
  private readonly limiter: WarnLimiter;

  constructor(log: Pick<Logger, 'warn'>, nowMs: () => number = () => performance.now()) {
    this.limiter = new WarnLimiter(log, REFUSAL_LOG_INTERVAL_MS, nowMs);
  }

  /** Counts one refusal of `reason`; logs it unless a line for `reason` went out less than a second ago. */
  readonly refused: RefusedCallback = (reason, detail) => {
    this.counts.set(reason, (this.counts.get(reason) ?? 0) + 1);
    this.limiter.warn(reason, { reason, total: this.counts.get(reason) }, `refused: ${detail}`);
  };
}

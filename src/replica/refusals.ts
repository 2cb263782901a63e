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

/** Least time between two warn lines for the same reason, ms. */
export const REFUSAL_LOG_INTERVAL_MS = 1000;

/** Called when a bound bites: `reason` is the counter's key, `detail` says what was refused and why. */
export type RefusedCallback = (reason: string, detail: string) => void;

/** Counts refusals by reason and logs them, rate-limited. */
export class RefusalCounter {
  /** Refusals so far, by reason. */
  readonly counts = new Map<string, number>();
  private readonly lastLoggedMs = new Map<string, number>();
  private readonly unlogged = new Map<string, number>();

  constructor(
    private readonly log: Pick<Logger, 'warn'>,
    private readonly nowMs: () => number = () => performance.now(),
  ) {}

  /** Counts one refusal of `reason`; logs it unless a line for `reason` went out less than a second ago. */
  readonly refused: RefusedCallback = (reason, detail) => {
    this.counts.set(reason, (this.counts.get(reason) ?? 0) + 1);
    const now = this.nowMs();
    const last = this.lastLoggedMs.get(reason);
    if (last !== undefined && now - last < REFUSAL_LOG_INTERVAL_MS) {
      this.unlogged.set(reason, (this.unlogged.get(reason) ?? 0) + 1);
      return;
    }
    const suppressed = this.unlogged.get(reason) ?? 0;
    this.unlogged.delete(reason);
    this.lastLoggedMs.set(reason, now);
    this.log.warn({ reason, total: this.counts.get(reason), ...(suppressed > 0 ? { suppressed } : {}) }, `refused: ${detail}`);
  };
}

/**
 * Dampening: a per-member exponential moving average of reported load,
 * updated once per report:
 *
 *     dampened_n = d · dampened_(n−1) + (1 − d) · reported_n
 *
 * with dampened_1 = reported_1 and 0 ≤ d < 1 set per group (`dampening`).
 * d = 0 follows reports exactly; larger d remembers more: after a step
 * change, the remaining error shrinks by a factor d per report.
 *
 * TAO's LoadAverage/LoadMinimum compute [d·(prev + per_balance_load) +
 * (1−d)·raw] / tolerance, but never create the `prev` table, so their
 * dampening has no memory at all. This one keeps the previous value per
 * member (and per client, for the planner).
 *
 * When the analyzer moves a client of load r from member i to member j it
 * shifts both averages by r at once (see {@link shiftLoad}): dampening is
 * meant to filter noise, not to hide a change the balancer itself made.
 * Without the shift, the lagging averages would make the next analysis see
 * an imbalance that no longer exists and move clients back and forth — the
 * oscillation in the paper's Figure 6.
 */

/** One dampening step; `previous` undefined means this is the first report. */
export function dampen(previous: number | undefined, reported: number, d: number): number {
  if (previous === undefined) return reported;
  return d * previous + (1 - d) * reported;
}

/** Moves `amount` of load between two dampened values (never below 0). */
export function shiftLoad(from: number, to: number, amount: number): [number, number] {
  return [Math.max(0, from - amount), to + amount];
}

/**
 * Balance-quality measures over a per-replica load series, shared by the
 * simulator and the effectiveness benchmark (BENCHMARKS.md definitions).
 */

/** max/mean of one sample (1 when all equal; 0 load counts as balanced). */
export function maxOverMean(loads: readonly number[]): number {
  const mean = loads.reduce((a, b) => a + b, 0) / loads.length;
  return mean > 0 ? Math.max(...loads) / mean : 1;
}

/** Coefficient of variation (population std / mean) of one sample. */
export function coefficientOfVariation(loads: readonly number[]): number {
  const mean = loads.reduce((a, b) => a + b, 0) / loads.length;
  if (!(mean > 0)) return 0;
  const variance = loads.reduce((sum, l) => sum + (l - mean) ** 2, 0) / loads.length;
  return Math.sqrt(variance) / mean;
}

/** A series row: [t_s, load_replica1, load_replica2, …]. */
export type SeriesRow = number[];

/**
 * Seconds until max/mean stays ≤ `threshold` for the rest of the series,
 * or null if the last sample is still above it.
 */
export function convergenceSeconds(series: readonly SeriesRow[], threshold = 1.1): number | null {
  let since: number | null = null;
  for (const row of series) {
    const ok = maxOverMean(row.slice(1)) <= threshold;
    if (ok && since === null) since = row[0]!;
    if (!ok) since = null;
  }
  return since;
}

/** Mean max/mean and mean CV over the rows with t ≥ fromSeconds. */
export function steadyState(series: readonly SeriesRow[], fromSeconds: number): { max_over_mean: number; cv: number } {
  const rows = series.filter((r) => r[0]! >= fromSeconds);
  if (rows.length === 0) return { max_over_mean: NaN, cv: NaN };
  // Over the window, compare mean loads per replica (what a replica sees on average).
  const replicas = rows[0]!.length - 1;
  const means = Array.from({ length: replicas }, (_, i) => rows.reduce((s, r) => s + r[i + 1]!, 0) / rows.length);
  return { max_over_mean: round(maxOverMean(means), 4), cv: round(coefficientOfVariation(means), 4) };
}

export function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/**
 * Load metrics a group can balance on. Replicas measure all of them in every
 * report; the group's `metric` says which one is "load".
 */
import type { LoadReport__Output } from '../generated/rebind/v1/LoadReport';

export const METRICS = ['calls_per_s', 'in_flight', 'event_loop_utilization', 'cpu', 'custom'] as const;
export type Metric = (typeof METRICS)[number];

export const METRIC_UNITS: Record<Metric, string> = {
  calls_per_s: 'calls per second',
  in_flight: 'calls in flight',
  event_loop_utilization: 'fraction of time the event loop is busy (0..1)',
  cpu: 'CPU cores used by the replica process',
  custom: 'application-defined (replica `loadCallback`)',
};

/** The load value of a report in the given metric. */
export function loadOf(report: LoadReport__Output, metric: Metric): number {
  switch (metric) {
    case 'calls_per_s':
      return report.callsPerS;
    case 'in_flight':
      return report.inFlight;
    case 'event_loop_utilization':
      return report.eventLoopUtilization;
    case 'cpu':
      return report.cpuCores;
    case 'custom':
      return report.custom;
  }
}

/**
 * Scale that turns a client's calls/s into the group's metric on a member:
 * the share of the member's load attributable to each call per second.
 * For calls_per_s it is 1; for other metrics the member's load is split in
 * proportion to call rates.
 */
export function perCallShare(report: LoadReport__Output, metric: Metric): number {
  if (metric === 'calls_per_s') return 1;
  return report.callsPerS > 0 ? loadOf(report, metric) / report.callsPerS : 0;
}

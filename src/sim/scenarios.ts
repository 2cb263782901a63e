/**
 * Named simulator scenarios. "paper" is the effectiveness experiment of the
 * TAO paper (Figures 5 and 6): 4 replicas, 8 clients at 100, 50, 100, 50, …
 * calls/s, bound round-robin at the start, so the replicas carry
 * 200/100/200/100 calls/s where 150 each is ideal.
 */
import type { SimScenario } from './simulator';

export interface PaperVariant {
  key: string;
  granularity: 'per-session' | 'per-request' | 'on-demand';
  strategy: string;
  params?: Record<string, number>;
}

/** The variants compared on the paper's scenario. */
export const PAPER_VARIANTS: PaperVariant[] = [
  { key: 'per_session_round_robin', granularity: 'per-session', strategy: 'round_robin' },
  { key: 'on_demand_minimum_dispersion', granularity: 'on-demand', strategy: 'minimum_dispersion' },
  { key: 'on_demand_load_minimum', granularity: 'on-demand', strategy: 'load_minimum' },
  { key: 'on_demand_least_loaded', granularity: 'on-demand', strategy: 'least_loaded' },
  { key: 'on_demand_load_average', granularity: 'on-demand', strategy: 'load_average' },
];

/** The paper's scenario for one variant. */
export function paperScenario(variant: PaperVariant, options: { reportIntervalMs?: number; durationMs?: number; seed?: number } = {}): SimScenario {
  const reportIntervalMs = options.reportIntervalMs ?? 1000;
  return {
    name: `paper/${variant.key}`,
    description: '4 replicas, 8 clients at 100/50/100/50/... calls/s, bound round-robin (200/100/200/100)',
    group: { granularity: variant.granularity, strategy: { name: variant.strategy, params: variant.params ?? {} }, reportIntervalMs },
    replicas: ['r1', 'r2', 'r3', 'r4'].map((name) => ({ name })),
    clients: [100, 50, 100, 50, 100, 50, 100, 50].map((rate) => ({ rate })),
    initialBinding: 'round-robin',
    durationMs: options.durationMs ?? 3 * reportIntervalMs + 60_000,
    seed: options.seed ?? 7,
  };
}

/** Scenario "late-joiner": 4 equal clients on one replica, a second joins later (issue 2's on-demand case). */
export function lateJoinerScenario(strategy = 'minimum_dispersion'): SimScenario {
  return {
    name: `late-joiner/${strategy}`,
    description: '4 clients at 50 calls/s all on r1; r2 attaches at 5 s',
    group: { granularity: 'on-demand', strategy, reportIntervalMs: 1000 },
    replicas: [{ name: 'r1' }, { name: 'r2', attachMs: 5000 }],
    clients: [50, 50, 50, 50].map((rate) => ({ rate })),
    initialBinding: 'balancer',
    durationMs: 30_000,
    seed: 3,
  };
}

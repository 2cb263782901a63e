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

/**
 * Variants for the scenarios with few or heavy clients: the paper's,
 * minimum_dispersion with whole-client bindings (k = 1, TAO's granularity) as
 * the reference the weighted bindings improve on, and per-request (direct:
 * these clients understand weighted bindings) as the per-call reference.
 */
const HEAVY_VARIANTS = [
  ...PAPER_VARIANTS.map((v) => ({ name: v.key, granularity: v.granularity, strategy: { name: v.strategy, params: v.params ?? {} } })),
  { name: 'on_demand_minimum_dispersion_whole', granularity: 'on-demand', strategy: { name: 'minimum_dispersion', params: {} }, maxBindingSize: 1 },
  { name: 'per_request_round_robin', granularity: 'per-request', strategy: { name: 'round_robin', params: {} } },
];

/**
 * The built-in scenarios as scenario-file objects (examples/sim/<name>.yaml
 * hold the same, and a test checks that they parse to the same scenario).
 */
export const BUILTIN_SCENARIOS: Record<string, Record<string, unknown>> = {
  paper: {
    name: 'paper',
    description: '4 replicas, 8 clients at 100/50/100/50/... calls/s, bound round-robin (200/100/200/100)',
    seed: 7,
    initialBinding: 'round-robin',
    group: { reportIntervalMs: 1000 },
    variants: PAPER_VARIANTS.map((v) => ({ name: v.key, granularity: v.granularity, strategy: { name: v.strategy, params: v.params ?? {} } })),
    replicas: 4,
    clients: [100, 50, 100, 50, 100, 50, 100, 50].map((rate) => ({ rate })),
  },
  'late-joiner': {
    name: 'late-joiner',
    description: '4 clients at 50 calls/s all on r1; r2 attaches at 5 s',
    durationMs: 30_000,
    seed: 3,
    initialBinding: 'balancer',
    group: { granularity: 'on-demand', strategy: 'minimum_dispersion', reportIntervalMs: 1000 },
    replicas: [{ name: 'r1' }, { name: 'r2', attachMs: 5000 }],
    clients: [{ rate: 50, count: 4 }],
  },
  'few-heavy': {
    name: 'few-heavy',
    description: '2 clients of 400 calls/s on 8 replicas (whole-client bindings leave 6 idle: max/mean 4.00 at best; weighted bindings spread each over 4)',
    durationMs: 63_000,
    seed: 7,
    initialBinding: 'balancer',
    group: { reportIntervalMs: 1000 },
    variants: HEAVY_VARIANTS,
    replicas: 8,
    clients: [{ rate: 400, count: 2 }],
  },
  'heavy-hitters': {
    name: 'heavy-hitters',
    description: '2 clients of 300 calls/s among 24 of 25 calls/s on 8 replicas: 1,200 calls/s, 150 per replica; a heavy client is 2x that (whole-client max/mean 2.00 at best; weighted bindings split the heavy ones)',
    seed: 7,
    initialBinding: 'balancer',
    group: { reportIntervalMs: 1000 },
    variants: HEAVY_VARIANTS,
    replicas: 8,
    clients: [
      { rate: 300, count: 2 },
      { rate: 25, count: 24 },
    ],
  },
  'slow-replica': {
    name: 'slow-replica',
    description: '4 replicas, 8 clients of 50 calls/s bound round-robin (100 calls/s each); r1 serves 20x slower from 10 s (50 calls/s: overloaded)',
    seed: 7,
    initialBinding: 'round-robin',
    group: { reportIntervalMs: 1000 },
    variants: [
      { name: 'on_demand_minimum_dispersion', granularity: 'on-demand', strategy: 'minimum_dispersion' },
      { name: 'on_demand_minimum_dispersion_in_flight', granularity: 'on-demand', strategy: 'minimum_dispersion', metric: 'in_flight' },
      { name: 'per_request_round_robin', granularity: 'per-request', strategy: 'round_robin' },
      { name: 'per_request_p2c_in_flight', granularity: 'per-request', strategy: 'p2c', metric: 'in_flight' },
    ],
    replicas: [{ name: 'r1', speedChanges: [{ atMs: 10_000, speed: 0.05 }] }, { name: 'r2' }, { name: 'r3' }, { name: 'r4' }],
    clients: [{ rate: 50, count: 8 }],
  },
};

/** Names of the built-in scenarios, for --scenario. */
export const BUILTIN_SCENARIO_NAMES = Object.keys(BUILTIN_SCENARIOS);

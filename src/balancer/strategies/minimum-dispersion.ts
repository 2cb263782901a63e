/**
 * minimum_dispersion (rebind's own): computes a shedding plan — which clients
 * move from which member to which — that minimizes the dispersion of load
 * after the moves while moving as little load as possible, and advises only
 * those clients.
 *
 * Dispersion is the sum of squared deviations from the mean,
 * f = Σ (L_k − μ)². Moving a client of load r from member i to member j
 * changes it by Δf = −2r(L_i − L_j) + 2r², so the move helps iff
 * 0 < r < L_i − L_j and helps most when r is closest to (L_i − L_j)/2.
 * Swapping a client of load r on i with one of load s on j acts like a move
 * of r − s; swaps matter because no single move helps when every client on
 * the busy member is as large as the gap (the paper's 200/100/200/100 case:
 * moving a 100 only mirrors the imbalance; swapping a 100 for a 50 fixes it).
 *
 * The planner is a steepest-descent local search: at each step it takes the
 * best move or swap between the most loaded and the least loaded members,
 * preferring, among steps of equal gain, the one that moves less load. It
 * stops as soon as every member is within tolerance, when no step gains at
 * least (minGain·μ)², or after maxMoves moves.
 * No plan is made while every member is within `tolerance` of the mean.
 * Held clients (recently moved) are never moved: that hysteresis and the
 * analyzer's settle period are what keep it from oscillating.
 */
import { chooseLeastLoaded } from './choose';
import type { ClientLoad, Move, PlanInput, StrategyFactory } from './types';

/** How many of the most and least loaded members each step looks at. */
const PAIR_CANDIDATES = 3;

export interface MinimumDispersionParams {
  /** Plan only when some member deviates from the mean by more than this fraction. */
  tolerance: number;
  /** Stop when the best step gains less than (minGain·mean)² of dispersion. */
  minGain: number;
  /** At most this many client moves per plan (a swap counts as two). */
  maxMoves: number;
}

interface WorkingMember {
  id: string;
  load: number;
  /** Movable clients, by load descending. */
  clients: ClientLoad[];
}

interface Step {
  gain: number;
  moved: number;
  i: WorkingMember;
  j: WorkingMember;
  fromI: ClientLoad;
  fromJ: ClientLoad | null;
}

/** Pure planner, exported for tests and the simulator. */
export function planMinimumDispersion(input: PlanInput, params: MinimumDispersionParams): Move[] {
  const members: WorkingMember[] = input.members.map((m) => ({ id: m.id, load: m.load, clients: [] }));
  if (members.length < 2) return [];
  const byId = new Map(members.map((m) => [m.id, m]));
  for (const client of input.clients) {
    if (client.held || !(client.load > 0)) continue;
    byId.get(client.memberId)?.clients.push(client);
  }
  for (const m of members) m.clients.sort((a, b) => b.load - a.load);
  const total = members.reduce((sum, m) => sum + m.load, 0);
  const mean = total / members.length;
  if (!(mean > 0)) return [];
  const withinTolerance = () => members.every((m) => Math.abs(m.load - mean) <= params.tolerance * mean);
  if (withinTolerance()) return [];

  const minGain = (params.minGain * mean) ** 2;
  const moves: Move[] = [];
  // Stop as soon as the group is within tolerance: further steps would only
  // trade near-equal clients to chase measurement noise, each costing a re-bind.
  while (moves.length < params.maxMoves && !withinTolerance()) {
    const step = bestStep(members, mean, params.maxMoves - moves.length);
    if (step === null || step.gain < minGain) break;
    apply(step, moves);
  }
  return moves;
}

function bestStep(members: WorkingMember[], mean: number, movesLeft: number): Step | null {
  const sorted = [...members].sort((a, b) => b.load - a.load);
  const over = sorted.filter((m) => m.load > mean).slice(0, PAIR_CANDIDATES);
  const under = sorted.filter((m) => m.load < mean).slice(-PAIR_CANDIDATES);
  let best: Step | null = null;
  const consider = (step: Step) => {
    if (step.gain <= 0) return;
    if (
      best === null ||
      step.gain > best.gain * (1 + 1e-9) ||
      (step.gain >= best.gain * (1 - 1e-9) && step.moved < best.moved)
    ) {
      best = step;
    }
  };
  for (const i of over) {
    for (const j of under) {
      const gap = i.load - j.load;
      for (const c of i.clients) {
        consider({ gain: 2 * c.load * (gap - c.load), moved: c.load, i, j, fromI: c, fromJ: null });
        if (movesLeft < 2) continue;
        for (const d of j.clients) {
          const net = c.load - d.load;
          if (net <= 0) continue;
          consider({ gain: 2 * net * (gap - net), moved: c.load + d.load, i, j, fromI: c, fromJ: d });
        }
      }
    }
  }
  return best;
}

function apply(step: Step, moves: Move[]): void {
  const { i, j, fromI, fromJ } = step;
  i.clients.splice(i.clients.indexOf(fromI), 1);
  i.load -= fromI.load;
  j.load += fromI.load;
  moves.push({ clientId: fromI.clientId, from: i.id, to: j.id, load: fromI.load });
  if (fromJ !== null) {
    j.clients.splice(j.clients.indexOf(fromJ), 1);
    j.load -= fromJ.load;
    i.load += fromJ.load;
    moves.push({ clientId: fromJ.clientId, from: j.id, to: i.id, load: fromJ.load });
  }
}

export const minimumDispersion: StrategyFactory = {
  name: 'minimum_dispersion',
  description:
    'Targeted shedding plan: moves the fewest clients (with swaps) that minimize the dispersion of load; binds new clients to the least projected load.',
  adaptive: true,
  params: [
    {
      name: 'tolerance',
      description: 'No plan while every member is within this fraction of the mean load.',
      unit: 'fraction of mean',
      default: 0.1,
      min: 0,
      max: 10,
    },
    {
      name: 'minGain',
      description: 'A step is worth taking only if it lowers the sum of squared deviations by at least (minGain x mean)^2.',
      unit: 'fraction of mean',
      default: 0.02,
      min: 0,
      max: 1,
    },
    {
      name: 'maxMoves',
      description: 'Upper bound on client moves in one plan (a swap is two).',
      unit: 'moves',
      default: 32,
      min: 1,
      max: 10000,
      integer: true,
    },
  ],
  create(params) {
    const p: MinimumDispersionParams = {
      tolerance: params['tolerance']!,
      minGain: params['minGain']!,
      maxMoves: params['maxMoves']!,
    };
    return {
      name: 'minimum_dispersion',
      adaptive: true,
      choose: chooseLeastLoaded,
      plan: (input) => planMinimumDispersion(input, p),
    };
  },
};

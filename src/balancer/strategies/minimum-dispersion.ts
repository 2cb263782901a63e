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
import type { Move, PlanInput, StrategyFactory } from './types';

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

/** One client's load on one member (the whole client, or one share of a divisible one). */
interface Unit {
  readonly clientId: string;
  load: number;
}

interface WorkingMember {
  id: string;
  load: number;
  /** Movable units, by load descending (phase 1) or in any order (phase 2). */
  clients: Unit[];
}

/** A divisible client's shares in the working state (phase 2). */
interface WorkingClient {
  /** Its total load when the plan started (shares are fractions of it). */
  readonly total: number;
  /** Members its load needs: ceil(total / ((1 + tolerance) · mean)), at most k. */
  maxMembers: number;
  /** Its unit on each member it has load on. */
  readonly units: Map<string, Unit>;
}

interface Step {
  gain: number;
  moved: number;
  /** Pairs (client, member) the step adds: 1 when a share lands where its client had none. */
  pairs: number;
  i: WorkingMember;
  j: WorkingMember;
  fromI: Unit;
  fromJ: Unit | null;
  /** Load of fromI moved: all of it, or (a share move) part of it. */
  delta: number;
}

/**
 * Pure planner, exported for tests and the simulator.
 *
 * Phase 1 moves and swaps whole units (a client, or one share of a divisible
 * client, as it is): TAO's granularity, and all the paper's scenario needs.
 * If that leaves the group outside tolerance, phase 2 also moves part of a
 * divisible client's unit: moving δ from member i to j changes Σ(L−μ)² by
 * −2δ(L_i−L_j)+2δ², best at δ=(L_i−L_j)/2, so shares reach exact balance
 * where no whole assignment can (few heavy clients). A share move never
 * gives a client more members than its load needs — ceil(load / ((1 +
 * tolerance)·mean)), so a client lighter than a member's fair load stays
 * whole — nor more than `maxBindingSize`, never creates or leaves
 * a share under `minShare` of the client's load, and, among steps of equal
 * gain, prefers one that lands where the client already is (no new
 * connection) and then the one that moves less load.
 */
export function planMinimumDispersion(input: PlanInput, params: MinimumDispersionParams): Move[] {
  const members: WorkingMember[] = input.members.map((m) => ({ id: m.id, load: m.load, clients: [] }));
  if (members.length < 2) return [];
  const byId = new Map(members.map((m) => [m.id, m]));
  const divisible = new Map<string, WorkingClient>();
  const units: { unit: Unit; member: WorkingMember; divisible: boolean }[] = [];
  for (const client of input.clients) {
    if (client.held || !(client.load > 0)) continue;
    const member = byId.get(client.memberId);
    if (member === undefined) continue;
    const unit: Unit = { clientId: client.clientId, load: client.load };
    member.clients.push(unit);
    units.push({ unit, member, divisible: client.divisible === true });
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
    const step = bestStep(members, mean, params.maxMoves - moves.length, null);
    if (step === null || step.gain < minGain) break;
    apply(step, moves, null);
  }
  const k = input.maxBindingSize ?? 1;
  if (k < 2 || withinTolerance() || moves.length >= params.maxMoves || !units.some((u) => u.divisible)) return moves;

  // Phase 2: every divisible unit where phase 1 left it, movable in part.
  const placed = new Map<string, string>(); // clientId -> member of a whole unit phase 1 moved
  for (const move of moves) placed.set(`${move.clientId}\u0000${move.from}`, move.to);
  for (const m of members) m.clients = [];
  for (const { unit, member, divisible: d } of units) {
    if (!d) continue;
    const at = byId.get(placed.get(`${unit.clientId}\u0000${member.id}`) ?? member.id)!;
    let client = divisible.get(unit.clientId);
    if (client === undefined) {
      client = { total: 0, maxMembers: 1, units: new Map() };
      divisible.set(unit.clientId, client);
    }
    (client as { total: number }).total += unit.load;
    const existing = client.units.get(at.id);
    if (existing !== undefined) existing.load += unit.load;
    else {
      const u: Unit = { clientId: unit.clientId, load: unit.load };
      client.units.set(at.id, u);
      at.clients.push(u);
    }
  }
  // A client is spread only over the members its load needs: a light one
  // (under a member's fair load) stays whole, as TAO bound it.
  for (const client of divisible.values()) client.maxMembers = Math.min(k, Math.max(1, Math.ceil(client.total / ((1 + params.tolerance) * mean) - 1e-9)));
  const shares: ShareRules = { members: byId, k, minShare: input.minShare ?? 0.1, clients: divisible };
  while (moves.length < params.maxMoves && !withinTolerance()) {
    const step = bestStep(members, mean, 0, shares);
    if (step === null || step.gain < minGain) break;
    apply(step, moves, shares);
  }
  return mergeMoves(moves);
}

interface ShareRules {
  members: Map<string, WorkingMember>;
  k: number;
  minShare: number;
  clients: Map<string, WorkingClient>;
}

function bestStep(members: WorkingMember[], mean: number, movesLeft: number, shares: ShareRules | null): Step | null {
  const sorted = [...members].sort((a, b) => b.load - a.load);
  const over = sorted.filter((m) => m.load > mean).slice(0, PAIR_CANDIDATES);
  const under = sorted.filter((m) => m.load < mean).slice(-PAIR_CANDIDATES);
  let best: Step | null = null;
  const consider = (step: Step) => {
    if (step.gain <= 0) return;
    if (
      best === null ||
      step.gain > best.gain * (1 + 1e-9) ||
      (step.gain >= best.gain * (1 - 1e-9) && (step.pairs < best.pairs || (step.pairs === best.pairs && step.moved < best.moved)))
    ) {
      best = step;
    }
  };
  for (const i of over) {
    for (const c of i.clients) {
      // Phase 2 also evens out a spread client between members it is on (no new connection), whatever their side of the mean.
      let targets: WorkingMember[] = under;
      if (shares !== null) {
        const extra = [...shares.clients.get(c.clientId)!.units.keys()].map((id) => shares.members.get(id)!).filter((m) => m !== i && m.load < i.load && !under.includes(m));
        if (extra.length > 0) targets = [...under, ...extra];
      }
      for (const j of targets) {
        const gap = i.load - j.load;
        if (shares === null) {
          consider({ gain: 2 * c.load * (gap - c.load), moved: c.load, pairs: 0, i, j, fromI: c, fromJ: null, delta: c.load });
          if (movesLeft < 2) continue;
          for (const d of j.clients) {
            const net = c.load - d.load;
            if (net <= 0) continue;
            consider({ gain: 2 * net * (gap - net), moved: c.load + d.load, pairs: 0, i, j, fromI: c, fromJ: d, delta: c.load });
          }
          continue;
        }
        const client = shares.clients.get(c.clientId)!;
        const there = client.units.has(j.id);
        const floor = shares.minShare * client.total;
        // All of the unit (the client leaves i: never a new pair), or part of it.
        consider({ gain: 2 * c.load * (gap - c.load), moved: c.load, pairs: there ? -1 : 0, i, j, fromI: c, fromJ: null, delta: c.load });
        const delta = Math.min(gap / 2, c.load - floor);
        if (!(delta > 0) || delta >= c.load) continue;
        if (!there && (delta < floor || client.units.size >= client.maxMembers)) continue;
        consider({ gain: 2 * delta * (gap - delta), moved: delta, pairs: there ? 0 : 1, i, j, fromI: c, fromJ: null, delta });
      }
    }
  }
  return best;
}

function apply(step: Step, moves: Move[], shares: ShareRules | null): void {
  const { i, j, fromI, fromJ, delta } = step;
  i.load -= delta;
  j.load += delta;
  moves.push({ clientId: fromI.clientId, from: i.id, to: j.id, load: delta });
  if (shares === null) {
    i.clients.splice(i.clients.indexOf(fromI), 1);
    if (fromJ !== null) {
      j.clients.splice(j.clients.indexOf(fromJ), 1);
      j.load -= fromJ.load;
      i.load += fromJ.load;
      moves.push({ clientId: fromJ.clientId, from: j.id, to: i.id, load: fromJ.load });
    }
    return;
  }
  const client = shares.clients.get(fromI.clientId)!;
  fromI.load -= delta;
  if (!(fromI.load > 1e-9 * client.total)) {
    i.clients.splice(i.clients.indexOf(fromI), 1);
    client.units.delete(i.id);
  }
  const target = client.units.get(j.id);
  if (target !== undefined) target.load += delta;
  else {
    const unit: Unit = { clientId: fromI.clientId, load: delta };
    client.units.set(j.id, unit);
    j.clients.push(unit);
  }
}

/** One move per (client, from, to): a plan that moved a share twice along the same edge says so once. */
function mergeMoves(moves: Move[]): Move[] {
  const merged = new Map<string, Move>();
  for (const m of moves) {
    const key = `${m.clientId}\u0000${m.from}\u0000${m.to}`;
    const seen = merged.get(key);
    merged.set(key, seen === undefined ? m : { ...seen, load: seen.load + m.load });
  }
  return [...merged.values()];
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

/**
 * The minimum-dispersion planner as it was before its scale optimisation
 * (issue 15: members sorted per step, every unit rebuilt, tolerance checked
 * over every member): a frozen copy, so that a test can check that the
 * optimised planner decides exactly the same plans, and bench:plan can time
 * both in one run. Do not "fix" this file: it is the reference.
 */
import type { Move, PlanInput } from '../../src/balancer/strategies/types';
import type { MinimumDispersionParams } from '../../src/balancer/strategies/minimum-dispersion';

/** How many of the most and least loaded members each step looks at. */
const PAIR_CANDIDATES = 3;

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
export function planMinimumDispersionReference(input: PlanInput, params: MinimumDispersionParams): Move[] {
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


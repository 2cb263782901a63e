/**
 * What rebind's TAO-compatible strategies (least_loaded, load_minimum,
 * load_average) share: TAO's parameters and effective load, and the
 * targeted shedding that replaces TAO's reject-everything alert.
 *
 * TAO (DOCGroup/ACE_TAO, orbsvcs/LoadBalancing/LB_*.cpp) computes an
 * effective load E = [d·(prev + p) + (1 − d)·L] / T with d = Dampening,
 * p = PerBalanceLoad, T = Tolerance, L = the reported load. Its `prev` table
 * is never created, so prev is always 0. Here the dampened value comes from
 * the group's load table, which has memory (see ../load-table.ts; a
 * strategy's own `dampening` parameter, when given, replaces the group's d),
 * and the per-balance load applies to the clients bound since the last
 * report:
 *
 *     E = (dampened load + binds since report · p) / T
 *
 * with p = the group's load per client when perBalanceLoad is 0.
 *
 * TAO's alerted replica rejects every request until the alert is lifted, so
 * all its clients leave at once and pile onto the next replica (the
 * oscillation of the paper's Figure 6). rebind sheds only the surplus: it
 * picks the clients whose loads add up to it and moves each to the least
 * loaded member that can take it.
 */
import { countedPendingBinds } from './choose';
import type { ChooseInput, ClientLoad, MemberLoad, Move, ParamSpec } from './types';

/** Ids of the members that shed clients within the hold time. */
export function recentlyShedIds(members: readonly MemberLoad[]): Set<string> {
  return new Set(members.filter((m) => m.recentlyShed).map((m) => m.id));
}

export const TOLERANCE_PARAM: ParamSpec = {
  name: 'tolerance',
  description: 'TAO Tolerance T: effective load = load / T (T >= 1).',
  unit: 'divisor',
  default: 1,
  min: 1,
  max: 1e6,
};

export const DAMPENING_PARAM: ParamSpec = {
  name: 'dampening',
  description: "TAO Dampening d; when given it replaces the group's dampening while this strategy is active.",
  unit: '0 <= d < 1',
  default: null,
  min: 0,
  max: 0.999999,
};

export const PER_BALANCE_LOAD_PARAM: ParamSpec = {
  name: 'perBalanceLoad',
  description: "TAO PerBalanceLoad p: load each client bound since the last report adds; 0 = estimate from the group.",
  unit: 'load units',
  default: 0,
  min: 0,
  max: 1e9,
};

export const MAX_MOVES_PARAM: ParamSpec = {
  name: 'maxMoves',
  description: 'Upper bound on client moves per plan.',
  unit: 'moves',
  default: 32,
  min: 1,
  max: 10000,
  integer: true,
};

/**
 * Members with their effective load (projected with the binds since the last
 * report) in place of their load, for the shared least-load choice.
 */
export function withEffectiveLoads(input: ChooseInput, perBalanceLoad: number, tolerance: number): MemberLoad[] {
  const perBind = perBalanceLoad > 0 ? perBalanceLoad : input.expectedClientLoad;
  return input.members.map((m) => ({
    ...m,
    load: effectiveLoad(m.load + m.pendingCalls * input.expectedCallLoad, countedPendingBinds(input, m.pendingBinds), perBind, tolerance),
    pendingBinds: 0,
    pendingCalls: 0,
  }));
}

/** Effective load of a member for choosing (projected) or analysis (reported). */
export function effectiveLoad(load: number, pendingBinds: number, perBind: number, tolerance: number): number {
  return (load + pendingBinds * perBind) / tolerance;
}

/** A member's surplus that the planner should move away. */
export interface Surplus {
  memberId: string;
  /** Load to shed, in load units. */
  amount: number;
}

/**
 * Picks the clients whose loads add up to `amount`, moving as little load as
 * possible: largest first while they fit, then, if something is still
 * missing, the smallest client that covers the rest when that overshoots
 * less than (or as much as) stopping short would undershoot.
 */
export function selectClients(clients: readonly ClientLoad[], amount: number): ClientLoad[] {
  const sorted = [...clients].sort((a, b) => b.load - a.load);
  const chosen: ClientLoad[] = [];
  let sum = 0;
  for (const c of sorted) {
    if (sum + c.load <= amount) {
      chosen.push(c);
      sum += c.load;
    }
  }
  const missing = amount - sum;
  if (missing > 1e-9) {
    const cover = sorted.filter((c) => !chosen.includes(c) && c.load >= missing).sort((a, b) => a.load - b.load)[0];
    if (cover !== undefined && cover.load - missing <= missing) chosen.push(cover);
  }
  return chosen;
}

/**
 * Moves each surplus to the least loaded members. A client goes to the
 * member with the least load that `accepts` it, and only if that member
 * ends no higher than the source did before the move (so a move never
 * inverts an imbalance into a worse one). A member that sheds in this plan
 * receives nothing in it: otherwise the first member relieved becomes the
 * least loaded and takes the next member's surplus, which only reshuffles
 * the imbalance. A move that only mirrors the imbalance (zero gain) is not
 * made onto a member in `recentlyShed`. `loads` is updated in place.
 */
export function shed(
  loads: Map<string, number>,
  clients: readonly ClientLoad[],
  surpluses: readonly Surplus[],
  maxMoves: number,
  recentlyShed: ReadonlySet<string>,
  accepts: (memberId: string, loadAfter: number) => boolean = () => true,
): Move[] {
  const moves: Move[] = [];
  const ordered = [...surpluses].sort((a, b) => b.amount - a.amount);
  const shedding = new Set(surpluses.map((s) => s.memberId));
  for (const { memberId, amount } of ordered) {
    const movable = clients.filter((c) => c.memberId === memberId && !c.held && c.load > 0);
    for (const client of selectClients(movable, amount)) {
      if (moves.length >= maxMoves) return moves;
      const sourceLoad = loads.get(memberId)!;
      let best: string | null = null;
      for (const [id, load] of loads) {
        if (shedding.has(id) || load + client.load > sourceLoad || !accepts(id, load + client.load)) continue;
        // A move that only mirrors the imbalance (the destination ends where the
        // source was) can untangle a deadlock of large clients, but done back
        // and forth it oscillates: never mirror onto a member that shed lately.
        if (load + client.load >= sourceLoad - 1e-9 && recentlyShed.has(id)) continue;
        if (best === null || load < loads.get(best)!) best = id;
      }
      if (best === null) continue;
      loads.set(memberId, sourceLoad - client.load);
      loads.set(best, loads.get(best)! + client.load);
      moves.push({ clientId: client.clientId, from: memberId, to: best, load: client.load });
    }
  }
  return moves;
}

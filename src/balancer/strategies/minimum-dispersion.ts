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

/** One client's load on one member (the whole client, or one share of a divisible one). */
interface Unit {
  readonly clientId: string;
  load: number;
}

interface WorkingMember {
  id: string;
  /** Position in the input's members. */
  index: number;
  load: number;
  /**
   * Movable units: phase 1, by load descending once {@link loaded} (a step
   * looks only at the few most and least loaded members, so a member's
   * units are read and sorted when it is first looked at: reading and
   * sorting every member's up front cost more than the rest of a plan of
   * 10,000); phase 2, in the order the eager planner built them once
   * {@link loaded}, and before that only the units phase 2 added to it.
   */
  clients: Unit[];
  loaded: boolean;
  /** Outside tolerance of the mean (counted in {@link Tolerance.outside}). */
  outside: boolean;
}

/**
 * The input's entries as the planner reads them: a member's (in input
 * order), a client's, each with its place in the input's flat order (its
 * sequence number), which decides ties and the order phase 2 builds its
 * units in.
 */
interface Entries {
  /** The entries of member `m` and their sequence numbers. */
  ofMember(m: WorkingMember): { entries: readonly ClientLoad[]; seqs: readonly number[] };
  /** A client's entries on the plan's members, with their members and sequence numbers, by sequence number. */
  ofClient(clientId: string): { entry: ClientLoad; member: WorkingMember; seq: number }[];
}

/** Sequence numbers of a lazy input: member index times this, plus the entry's position in the member (far fewer than 2^32 per member). */
const SEQ_STRIDE = 2 ** 32;

/** Entries read on demand from the group (clientsOf/entriesOf): nothing per client until asked. */
function lazyEntries(input: PlanInput, members: readonly WorkingMember[], byId: ReadonlyMap<string, WorkingMember>): Entries {
  const clientsOf = input.clientsOf!;
  const entriesOf = input.entriesOf!;
  const cache = new Map<WorkingMember, { entries: readonly ClientLoad[]; seqs: readonly number[] }>();
  return {
    ofMember(m) {
      let got = cache.get(m);
      if (got === undefined) {
        const entries = clientsOf(m.index);
        got = { entries, seqs: entries.map((_, k) => m.index * SEQ_STRIDE + k) };
        cache.set(m, got);
      }
      return got;
    },
    ofClient(clientId) {
      const out: { entry: ClientLoad; member: WorkingMember; seq: number }[] = [];
      for (const entry of entriesOf(clientId)) {
        const member = byId.get(entry.memberId);
        // The only order that matters among one client's entries is their members' (one entry per member).
        if (member !== undefined && members[member.index] === member) out.push({ entry, member, seq: member.index * SEQ_STRIDE });
      }
      if (out.length > 1) out.sort((a, b) => a.seq - b.seq);
      return out;
    },
  };
}

/** Entries of a flat input (no clientsOf/entriesOf): indexed once, in the input's own order. */
function flatEntries(input: PlanInput, byId: ReadonlyMap<string, WorkingMember>): Entries {
  const ofMember = new Map<WorkingMember, { entries: ClientLoad[]; seqs: number[] }>();
  input.clients.forEach((entry, seq) => {
    const member = byId.get(entry.memberId);
    if (member === undefined) return;
    let m = ofMember.get(member);
    if (m === undefined) ofMember.set(member, (m = { entries: [], seqs: [] }));
    m.entries.push(entry);
    m.seqs.push(seq);
  });
  // By client only if phase 2 asks (phase 1 reads members only).
  let ofClient: Map<string, { entry: ClientLoad; member: WorkingMember; seq: number }[]> | null = null;
  return {
    ofMember: (m) => ofMember.get(m) ?? { entries: [], seqs: [] },
    ofClient(clientId) {
      if (ofClient === null) {
        const index = new Map<string, { entry: ClientLoad; member: WorkingMember; seq: number }[]>();
        input.clients.forEach((entry, seq) => {
          const member = byId.get(entry.memberId);
          if (member === undefined) return;
          const list = index.get(entry.clientId);
          if (list === undefined) index.set(entry.clientId, [{ entry, member, seq }]);
          else list.push({ entry, member, seq });
        });
        ofClient = index;
      }
      return ofClient.get(clientId) ?? [];
    },
  };
}

/** A unit phase 1 or 2 may move: not held, with load. */
function movable(entry: ClientLoad): boolean {
  return !entry.held && entry.load > 0;
}

/** ... and, for phase 2, divisible. */
function divisibleUnit(entry: ClientLoad): boolean {
  return entry.divisible === true && movable(entry);
}

/**
 * How many members are outside tolerance, kept up to date as steps change
 * two members' loads: checking every member after each step was O(members)
 * per step.
 */
class Tolerance {
  outside = 0;
  constructor(
    private readonly mean: number,
    private readonly tolerance: number,
    members: readonly WorkingMember[],
  ) {
    for (const m of members) this.update(m);
  }
  /** Re-checks a member whose load changed. */
  update(m: WorkingMember): void {
    const outside = !(Math.abs(m.load - this.mean) <= this.tolerance * this.mean);
    if (outside !== m.outside) this.outside += outside ? 1 : -1;
    m.outside = outside;
  }
  get within(): boolean {
    return this.outside === 0;
  }
}

/** A divisible client's shares in the working state (phase 2). */
interface WorkingClient {
  /** Its total load when the plan started (shares are fractions of it). */
  readonly total: number;
  /** Members its load needs: ceil(total / ((1 + tolerance) · mean)), at most k. */
  maxMembers: number;
  /**
   * The members it has load on, in the order it came to them, and its unit
   * on each (units[n] on memberIds[n]): at most k entries, so two small
   * arrays rather than a Map per client (phase 2 of a group of 100,000
   * clients made 40,000 Maps).
   */
  readonly memberIds: string[];
  readonly units: Unit[];
}

/** The client's unit on member `memberId`, if it has one. */
function unitOn(client: WorkingClient, memberId: string): Unit | undefined {
  const n = client.memberIds.indexOf(memberId);
  return n < 0 ? undefined : client.units[n];
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
  const members: WorkingMember[] = input.members.map((m, index) => ({ id: m.id, index, load: m.load, clients: [], loaded: false, outside: false }));
  if (members.length < 2) return [];
  const byId = new Map(members.map((m) => [m.id, m]));
  const total = members.reduce((sum, m) => sum + m.load, 0);
  const mean = total / members.length;
  if (!(mean > 0)) return [];
  const tolerance = new Tolerance(mean, params.tolerance, members);
  if (tolerance.within) return [];
  const entries = input.clientsOf !== undefined && input.entriesOf !== undefined ? lazyEntries(input, members, byId) : flatEntries(input, byId);

  const minGain = (params.minGain * mean) ** 2;
  const moves: Move[] = [];
  const phase1 = (m: WorkingMember) => sortedClients(m, entries);
  // Stop as soon as the group is within tolerance: further steps would only
  // trade near-equal clients to chase measurement noise, each costing a re-bind.
  while (moves.length < params.maxMoves && !tolerance.within) {
    const step = bestStep(members, mean, params.maxMoves - moves.length, null, phase1);
    if (step === null || step.gain < minGain) break;
    apply(step, moves, null);
    tolerance.update(step.i);
    tolerance.update(step.j);
  }
  const k = input.maxBindingSize ?? 1;
  // (With no divisible unit, phase 2 finds no step: the plan is phase 1's, which merging leaves as it is.)
  if (k < 2 || tolerance.within || moves.length >= params.maxMoves) return moves;

  // Phase 2: every divisible unit where phase 1 left it, movable in part.
  // Built as the members and clients are first looked at, exactly as if
  // every divisible unit had been placed up front in the input's order.
  const placed = new Map<string, string>(); // clientId NUL member -> member a whole unit of it on that member was moved to by phase 1
  for (const move of moves) placed.set(`${move.clientId}\u0000${move.from}`, move.to);
  // Only a client phase 1 moved can have been placed elsewhere (a key per unit cost a string per client).
  const movedClients = new Set(moves.map((m) => m.clientId));
  const placedAt = (clientId: string, memberId: string) => (movedClients.has(clientId) ? placed.get(`${clientId}\u0000${memberId}`) : undefined);
  // Units phase 1 moved whole land on their new member: by target, with their sequence numbers.
  const arrivals = new Map<WorkingMember, { entry: ClientLoad; seq: number }[]>();
  const moved = new Set<string>();
  for (const move of moves) {
    const key = `${move.clientId}\u0000${move.from}`;
    if (moved.has(key)) continue;
    moved.add(key);
    const from = byId.get(move.from)!;
    const to = byId.get(placed.get(key)!)!;
    const { entries: list, seqs } = entries.ofMember(from);
    list.forEach((entry, n) => {
      if (entry.clientId !== move.clientId || !divisibleUnit(entry)) return;
      let at = arrivals.get(to);
      if (at === undefined) arrivals.set(to, (at = []));
      at.push({ entry, seq: seqs[n]! });
    });
  }
  for (const m of members) {
    m.clients = [];
    m.loaded = false;
  }
  const divisible = new Map<string, WorkingClient>();
  const shares: ShareRules = {
    members: byId,
    k,
    minShare: input.minShare ?? 0.1,
    client(clientId) {
      let client = divisible.get(clientId);
      if (client !== undefined) return client;
      client = { total: 0, maxMembers: 1, memberIds: [], units: [] };
      divisible.set(clientId, client);
      for (const { entry, member } of entries.ofClient(clientId)) {
        if (!divisibleUnit(entry)) continue;
        const to = placedAt(clientId, member.id);
        const at = to === undefined ? member : byId.get(to)!;
        (client as { total: number }).total += entry.load;
        const existing = unitOn(client, at.id);
        if (existing !== undefined) existing.load += entry.load;
        else {
          client.memberIds.push(at.id);
          client.units.push({ clientId, load: entry.load });
        }
      }
      // A client is spread only over the members its load needs: a light one
      // (under a member's fair load) stays whole, as TAO bound it.
      client.maxMembers = Math.min(k, Math.max(1, Math.ceil(client.total / ((1 + params.tolerance) * mean) - 1e-9)));
      return client;
    },
    units(m) {
      if (m.loaded) return m.clients;
      // Its divisible units where phase 1 left them, in the input's order, then those phase 2 added since.
      const { entries: list, seqs } = entries.ofMember(m);
      const landing: { entry: ClientLoad; seq: number }[] = [];
      list.forEach((entry, n) => {
        if (divisibleUnit(entry) && placedAt(entry.clientId, m.id) === undefined) landing.push({ entry, seq: seqs[n]! });
      });
      const arrived = arrivals.get(m);
      if (arrived !== undefined) {
        landing.push(...arrived);
        landing.sort((a, b) => a.seq - b.seq);
      }
      const units: Unit[] = [];
      const seen = new Set<Unit>();
      for (const { entry } of landing) {
        const unit = unitOn(shares.client(entry.clientId), m.id)!;
        if (seen.has(unit)) continue;
        seen.add(unit);
        units.push(unit);
      }
      units.push(...m.clients);
      m.clients = units;
      m.loaded = true;
      return units;
    },
  };
  while (moves.length < params.maxMoves && !tolerance.within) {
    const step = bestStep(members, mean, 0, shares, shares.units);
    if (step === null || step.gain < minGain) break;
    apply(step, moves, shares);
    tolerance.update(step.i);
    tolerance.update(step.j);
  }
  return mergeMoves(moves);
}

interface ShareRules {
  members: Map<string, WorkingMember>;
  k: number;
  minShare: number;
  /** The client's shares (built the first time it is asked for). */
  client(clientId: string): WorkingClient;
  /** A member's units (built the first time it is asked for). */
  units(m: WorkingMember): Unit[];
}

/** A member's movable units by load, descending, read and sorted the first time phase 1 looks at them (a stable sort of the input order). */
function sortedClients(m: WorkingMember, entries: Entries): Unit[] {
  if (!m.loaded) {
    // Phase 1 never changes a unit's load (phase 2 makes its own units): the input's entries serve, uncopied.
    m.clients = entries.ofMember(m).entries.filter(movable) as Unit[];
    if (m.clients.length > 1) m.clients.sort((a, b) => b.load - a.load);
    m.loaded = true;
  }
  return m.clients;
}

/**
 * Inserts `m` into `list`, kept in the order of a stable sort by load
 * descending of members visited in their input order: after every member
 * at least as loaded.
 */
function insertByLoad(list: WorkingMember[], m: WorkingMember): void {
  let at = list.length;
  while (at > 0 && list[at - 1]!.load < m.load) at--;
  list.splice(at, 0, m);
}

/**
 * The PAIR_CANDIDATES most loaded members above the mean and the
 * PAIR_CANDIDATES least loaded below it, each in the order of a stable sort
 * of all members by load descending (ties in input order): exactly the
 * first and the last of such a sort, found in one pass instead of a sort
 * per step.
 */
function candidates(members: readonly WorkingMember[], mean: number): { over: WorkingMember[]; under: WorkingMember[] } {
  const over: WorkingMember[] = [];
  const under: WorkingMember[] = [];
  for (const m of members) {
    if (m.load > mean) {
      // Among the first PAIR_CANDIDATES only if more loaded than the last of them (a tie goes after it).
      if (over.length < PAIR_CANDIDATES || m.load > over[PAIR_CANDIDATES - 1]!.load) {
        insertByLoad(over, m);
        if (over.length > PAIR_CANDIDATES) over.pop();
      }
    } else if (m.load < mean) {
      // Among the last PAIR_CANDIDATES unless more loaded than the first of them (a tie goes after it: later).
      if (under.length < PAIR_CANDIDATES || m.load <= under[0]!.load) {
        insertByLoad(under, m);
        if (under.length > PAIR_CANDIDATES) under.shift();
      }
    }
  }
  return { over, under };
}

/** Index of the first unit lighter than `load` in units sorted by load descending (units.length if none). */
function firstLighter(units: readonly Unit[], load: number): number {
  let lo = 0;
  let hi = units.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (units[mid]!.load >= load) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function bestStep(members: WorkingMember[], mean: number, movesLeft: number, shares: ShareRules | null, unitsOf: (m: WorkingMember) => Unit[]): Step | null {
  const { over, under } = candidates(members, mean);
  let best: Step | null = null;
  // A step object only for a step better than the best so far: phase 1 weighs every pair of units of
  // two members (100 x 100 per pair of members in a group of 1,000 members and 100,000 clients).
  const consider = (gain: number, moved: number, pairs: number, i: WorkingMember, j: WorkingMember, fromI: Unit, fromJ: Unit | null, delta: number) => {
    if (gain <= 0) return;
    if (best === null || gain > best.gain * (1 + 1e-9) || (gain >= best.gain * (1 - 1e-9) && (pairs < best.pairs || (pairs === best.pairs && moved < best.moved)))) {
      best = { gain, moved, pairs, i, j, fromI, fromJ, delta };
    }
  };
  for (const i of over) {
    for (const c of unitsOf(i)) {
      // Phase 2 also evens out a spread client between members it is on (no new connection), whatever their side of the mean.
      let targets: WorkingMember[] = under;
      if (shares !== null) {
        const extra = shares.client(c.clientId).memberIds.map((id) => shares.members.get(id)!).filter((m) => m !== i && m.load < i.load && !under.includes(m));
        if (extra.length > 0) targets = [...under, ...extra];
      }
      for (const j of targets) {
        const gap = i.load - j.load;
        if (shares === null) {
          consider(2 * c.load * (gap - c.load), c.load, 0, i, j, c, null, c.load);
          if (movesLeft < 2) continue;
          // A swap of c for a lighter d moves net = c − d in (0, c]: it gains 2·net·(gap − net), at most
          // 2c(gap − c) for c ≤ gap/2 and gap²/2 otherwise. When that cannot even tie the best step so far, no
          // swap of c along this pair would replace it: none is weighed (the margin covers rounding). Most
          // clients are light next to the gap: this is most of phase 1's work in a group of 1,000 members.
          const bound = c.load <= gap / 2 ? 2 * c.load * (gap - c.load) : (gap * gap) / 2;
          if (!(gap > 0) || (best !== null && bound * (1 + 1e-12) < (best as Step).gain * (1 - 1e-9))) continue;
          // j's units by load descending: those at least as large as c cannot be swapped for it (skipped by a binary search).
          const units = unitsOf(j);
          for (let n = firstLighter(units, c.load); n < units.length; n++) {
            const d = units[n]!;
            const net = c.load - d.load;
            consider(2 * net * (gap - net), c.load + d.load, 0, i, j, c, d, c.load);
          }
          continue;
        }
        const client = shares.client(c.clientId);
        const there = client.memberIds.includes(j.id);
        const floor = shares.minShare * client.total;
        // All of the unit (the client leaves i: never a new pair), or part of it.
        consider(2 * c.load * (gap - c.load), c.load, there ? -1 : 0, i, j, c, null, c.load);
        const delta = Math.min(gap / 2, c.load - floor);
        if (!(delta > 0) || delta >= c.load) continue;
        if (!there && (delta < floor || client.units.length >= client.maxMembers)) continue;
        consider(2 * delta * (gap - delta), delta, there ? 0 : 1, i, j, c, null, delta);
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
  const client = shares.client(fromI.clientId);
  fromI.load -= delta;
  if (!(fromI.load > 1e-9 * client.total)) {
    i.clients.splice(i.clients.indexOf(fromI), 1);
    // As Map.delete would: the others keep their order.
    const n = client.memberIds.indexOf(i.id);
    if (n >= 0) {
      client.memberIds.splice(n, 1);
      client.units.splice(n, 1);
    }
  }
  const target = unitOn(client, j.id);
  if (target !== undefined) target.load += delta;
  else {
    const unit: Unit = { clientId: fromI.clientId, load: delta };
    client.memberIds.push(j.id);
    client.units.push(unit);
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

/**
 * The per-call pick inside a weighted binding (client policy and simulator).
 *
 * Smooth weighted round robin (nginx's): each pick adds every member's
 * weight to its credit, takes the member with the most credit and charges
 * it the total. Over any run of W = Σ weights picks each member is picked
 * exactly its weight times, spread evenly: a binding's shares are followed
 * with no sampling noise, which weighted random draws would add (±10 % per
 * report interval at 100 calls/s per member, enough to look like imbalance
 * to the planner).
 */

/** Index of the next member; `credits` (one per weight, start at 0) is updated in place. */
export function smoothNext(weights: readonly number[], credits: number[]): number {
  let total = 0;
  let best = 0;
  for (let i = 0; i < weights.length; i++) {
    credits[i] = (credits[i] ?? 0) + weights[i]!;
    total += weights[i]!;
    if (credits[i]! > credits[best]!) best = i;
  }
  credits[best]! -= total;
  return best;
}

/** Index of the member a uniform draw `r` in [0, 1) falls on, each member weighted by its share; `skip` is left out. */
function weightedIndex(members: readonly { permille: number }[], r: number, skip = -1): number {
  let total = 0;
  for (let i = 0; i < members.length; i++) if (i !== skip) total += members[i]!.permille;
  let point = r * total;
  let last = -1;
  for (let i = 0; i < members.length; i++) {
    if (i === skip) continue;
    last = i;
    point -= members[i]!.permille;
    if (point < 0) return i;
  }
  return last;
}

/**
 * The per-call choice inside a binding: a first member by smooth weighted
 * round robin (exact shares, no sampling noise; see smooth-wrr.ts) or, with
 * no `first`, by a weighted draw; a second drawn by share among the others;
 * keep the one with fewer of this channel's calls in flight per share (the
 * first on a tie). When members answer alike the first decides and calls
 * follow the shares exactly (idle members tie at 0); a member whose calls
 * pile up loses every duel against one that keeps up, so it stops getting
 * new calls within a few calls.
 *
 * Why not (in flight + 1) / share: the candidates are already picked by
 * share, so dividing by it again counts the share twice (a 700/300 binding
 * would send 91% of sequential calls to the first member).
 */
export function pickOfTwo(members: readonly { permille: number; inFlight: number }[], random: () => number, first?: number): number {
  if (members.length <= 1) return 0;
  const a = first ?? weightedIndex(members, random());
  const b = weightedIndex(members, random(), a);
  const load = (i: number) => members[i]!.inFlight / members[i]!.permille;
  return load(b) < load(a) ? b : a;
}


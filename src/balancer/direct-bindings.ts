/**
 * The pure math of per-request (direct) bindings: which members share a
 * binding (shards of at most 16) and with which weights (capacity), and
 * when a new set of weights is worth sending. The group (group.ts) keeps
 * the state; these functions only compute.
 */
import { formatBinding, MAX_BINDING_MEMBERS, toPermille, type BindingMember } from '../common/wire';

/**
 * Weights of a per-request binding move only when some member's weight
 * would change by at least this much, per-mille: each change is one more
 * trailer per client and member.
 */
export const OFFER_WEIGHT_STEP_PERMILLE = 50;

/** Capacities are kept within this factor of their median (a member is never starved nor flooded by one odd report). */
export const CAPACITY_CLAMP_FACTOR = 4;

/**
 * Each member's capacity for the weights: its estimate (calls/s per unit of
 * load) or, unknown, the median of the known ones (1 if none is known), all
 * clamped to [median / 4, 4 × median].
 */
export function clampedCapacities(estimates: readonly (number | undefined)[]): number[] {
  const known = estimates.filter((c): c is number => c !== undefined && Number.isFinite(c) && c > 0).sort((a, b) => a - b);
  const median = known.length > 0 ? known[Math.floor(known.length / 2)]! : 1;
  return estimates.map((c) => Math.min(CAPACITY_CLAMP_FACTOR * median, Math.max(median / CAPACITY_CLAMP_FACTOR, c !== undefined && Number.isFinite(c) && c > 0 ? c : median)));
}

/**
 * Splits members (sorted by address) into ceil(n / 16) shards, member i to
 * shard i mod shards, so that shards differ in size by at most one.
 */
export function shards<T>(sortedMembers: readonly T[]): T[][] {
  const count = Math.ceil(sortedMembers.length / MAX_BINDING_MEMBERS);
  return Array.from({ length: count }, (_, s) => sortedMembers.filter((_, i) => i % count === s));
}

/** The binding string of one shard: its members weighted by capacity (null if none has any). */
export function shardBinding(members: readonly { address: string; capacity: number }[]): string | null {
  const weighted = toPermille(members.map((m) => ({ address: m.address, load: m.capacity })));
  return weighted.length === 0 ? null : formatBinding(weighted);
}

/** The members of a binding string this module or the group formatted (already valid). */
export function bindingMembers(text: string): BindingMember[] {
  return text.split(',').map((entry) => {
    const eq = entry.lastIndexOf('=');
    return { address: entry.slice(0, eq), permille: Number(entry.slice(eq + 1)) };
  });
}

/** Whether two sets of per-request bindings (by member id) differ enough to send: other members, or a weight moved by the step. */
export function offersDiffer(a: ReadonlyMap<string, string>, b: ReadonlyMap<string, string>): boolean {
  if (a.size !== b.size) return true;
  for (const [id, text] of b) {
    const old = a.get(id);
    if (old === undefined) return true;
    if (old === text) continue;
    const was = new Map(bindingMembers(old).map((m) => [m.address, m.permille]));
    const now = bindingMembers(text);
    if (now.length !== was.size) return true;
    for (const m of now) {
      const w = was.get(m.address);
      if (w === undefined || Math.abs(w - m.permille) >= OFFER_WEIGHT_STEP_PERMILLE) return true;
    }
  }
  return false;
}

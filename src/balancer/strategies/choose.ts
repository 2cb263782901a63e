/**
 * Shared choice rule of the adaptive strategies: the member with the least
 * projected load, where projected = dampened load + load expected from
 * clients bound since its last report. Members within 5 % of the least are
 * treated as tied and one is picked at random, as TAO does, so that a burst
 * of new clients does not herd onto one member between two reports.
 */
import type { ChooseInput } from './types';

/** Relative band within which loads count as tied. */
export const TIE_BAND = 0.05;

/**
 * Pending binds as the choice counts them: this balancer's own binds since
 * the member's last report, times the live balancers (`peerBalancers`):
 * with several balancers binding from the same reports, each assumes the
 * others bind to a member as often as it does, so that they do not all pile
 * new clients onto the member that looked lightest at the last report
 * (measured in bench/herd.ts).
 */
export function countedPendingBinds(input: ChooseInput, pendingBinds: number): number {
  return pendingBinds * (input.peerBalancers ?? 1);
}

/** Projected load of member `index` for the choice rule. */
export function projectedLoad(input: ChooseInput, index: number): number {
  const c = input.compact;
  if (c !== undefined) {
    const slot = c.slots[index]!;
    return c.loads[slot]! + countedPendingBinds(input, c.pendingBinds[slot]!) * input.expectedClientLoad + c.pendingCalls[slot]! * input.expectedCallLoad;
  }
  const member = input.members[index]!;
  return member.load + countedPendingBinds(input, member.pendingBinds) * input.expectedClientLoad + member.pendingCalls * input.expectedCallLoad;
}

/** Projected loads of the members being chosen from (reused: a choice runs for every bind and every proxied call). */
let scratch = new Float64Array(1024);
/** Indices of the tied members of a choice (reused likewise). */
let tiedScratch = new Int32Array(1024);

/**
 * Index of the least-loaded member, ties within {@link TIE_BAND} broken at
 * random (one draw). One pass over the members (their projected loads into
 * a reused array) and one over that array, no allocation: this runs for every
 * binding (and every proxied call) in groups of a thousand members, whose
 * objects are spread over the heap.
 */
export function chooseLeastLoaded(input: ChooseInput): number {
  const count = input.members.length;
  if (scratch.length < count) scratch = new Float64Array(Math.max(count, scratch.length * 2));
  const loads = scratch;
  let least = Infinity;
  const c = input.compact;
  if (c !== undefined) {
    // The same sums as projectedLoad, in the same order (so the same doubles), from the arrays.
    const { slots, loads: memberLoads, pendingBinds, pendingCalls } = c;
    const peers = input.peerBalancers ?? 1;
    const perClient = input.expectedClientLoad;
    const perCall = input.expectedCallLoad;
    // A comparison rather than Math.min (cheaper per member), with Math.min's answer for NaN: a NaN load makes the least NaN (no member
    // is then tied and none draws a random number). Its -0 is immaterial: the limit below is the same for -0 and 0.
    let nan = false;
    for (let i = 0; i < count; i++) {
      const slot = slots[i]!;
      const load = memberLoads[slot]! + pendingBinds[slot]! * peers * perClient + pendingCalls[slot]! * perCall;
      loads[i] = load;
      if (load < least) least = load;
      else if (load !== load) nan = true;
    }
    if (nan) least = Number.NaN;
  } else {
    for (let i = 0; i < count; i++) {
      const load = projectedLoad(input, i);
      loads[i] = load;
      least = Math.min(least, load);
    }
  }
  const limit = least + Math.max(Math.abs(least) * TIE_BAND, 1e-9);
  // Every tied member equally likely, with one random draw: in a balanced
  // group most members are tied, and a draw per tied member (reservoir
  // sampling, as before issue 15) cost ~1,000 draws per bind at 1,000 members.
  if (tiedScratch.length < count) tiedScratch = new Int32Array(Math.max(count, tiedScratch.length * 2));
  const tiedAt = tiedScratch;
  let tied = 0;
  for (let i = 0; i < count; i++) {
    if (loads[i]! <= limit) tiedAt[tied++] = i;
  }
  if (tied === 0) return 0; // a NaN load: nothing compares
  if (tied === 1) return tiedAt[0]!;
  return tiedAt[Math.min(tied - 1, Math.floor(input.random() * tied))]!;
}

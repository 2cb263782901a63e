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

/** Projected load of member `index` for the choice rule. */
export function projectedLoad(input: ChooseInput, index: number): number {
  const member = input.members[index]!;
  return member.load + member.pendingBinds * input.expectedClientLoad + member.pendingCalls * input.expectedCallLoad;
}

/** Index of the least-loaded member, ties within {@link TIE_BAND} broken at random. */
export function chooseLeastLoaded(input: ChooseInput): number {
  const count = input.members.length;
  let least = Infinity;
  for (let i = 0; i < count; i++) least = Math.min(least, projectedLoad(input, i));
  const limit = least + Math.max(Math.abs(least) * TIE_BAND, 1e-9);
  let tied = 0;
  for (let i = 0; i < count; i++) if (projectedLoad(input, i) <= limit) tied++;
  let pick = Math.floor(input.random() * tied);
  for (let i = 0; i < count; i++) {
    if (projectedLoad(input, i) <= limit) {
      if (pick === 0) return i;
      pick--;
    }
  }
  return 0;
}

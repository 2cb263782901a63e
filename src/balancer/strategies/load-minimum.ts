/**
 * load_minimum (TAO LoadMinimum): binds to the member with the least
 * effective load (ties within 5 % broken at random). In on-demand groups a
 * member is advised when its effective load E is above the group average
 * and more than `minimumDiff` (TAO: 40 %) above the least non-zero load;
 * it then sheds its surplus above the average to the least loaded members.
 * Unlike TAO, which leaves a member at 2x the minimum or more as it was
 * (so heavy overload could go un-alerted), such a member is always advised.
 */
import { chooseLeastLoaded } from './choose';
import { DAMPENING_PARAM, MAX_MOVES_PARAM, PER_BALANCE_LOAD_PARAM, recentlyShedIds, shed, TOLERANCE_PARAM, withEffectiveLoads, type Surplus } from './tao';
import type { StrategyFactory } from './types';

export const loadMinimum: StrategyFactory = {
  name: 'load_minimum',
  description: 'TAO LoadMinimum: least effective load; a member above average and more than 40 % (or 2x or more) above the minimum sheds its surplus.',
  adaptive: true,
  params: [
    TOLERANCE_PARAM,
    DAMPENING_PARAM,
    PER_BALANCE_LOAD_PARAM,
    {
      name: 'minimumDiff',
      description: 'Advise a member more than this fraction above the least non-zero load (TAO: 0.4).',
      unit: 'fraction of minimum',
      default: 0.4,
      min: 0,
      max: 100,
    },
    MAX_MOVES_PARAM,
  ],
  create(params) {
    const tolerance = params['tolerance']!;
    const perBalance = params['perBalanceLoad']!;
    const cutoff = params['minimumDiff']!;
    const maxMoves = params['maxMoves']!;
    return {
      name: 'load_minimum',
      adaptive: true,
      choose(input) {
        return chooseLeastLoaded({ ...input, members: withEffectiveLoads(input, perBalance, tolerance), compact: undefined });
      },
      plan(input) {
        const effective = input.members.map((m) => ({ id: m.id, e: m.load / tolerance }));
        const average = effective.reduce((s, m) => s + m.e, 0) / effective.length;
        const nonZero = effective.filter((m) => m.e > 0).map((m) => m.e);
        if (nonZero.length === 0) return [];
        const minimum = Math.min(...nonZero);
        const surpluses: Surplus[] = [];
        for (const m of effective) {
          if (m.e <= average) continue;
          const diff = m.e / minimum - 1;
          if (diff > cutoff || diff >= 1) surpluses.push({ memberId: m.id, amount: (m.e - average) * tolerance });
        }
        if (surpluses.length === 0) return [];
        return shed(new Map(input.members.map((m) => [m.id, m.load])), input.clients, surpluses, maxMoves, recentlyShedIds(input.members));
      },
    };
  },
};

/**
 * load_average (TAO LoadAverage): binds new clients at random, as TAO does.
 * In on-demand groups a member is advised when its effective load is more
 * than `averageDiff` (TAO: 80 %) above the group average; it sheds its
 * surplus above the average to the least loaded members. Unlike TAO, which
 * leaves a member at 2x the average or more as it was, such a member is
 * always advised.
 */
import { DAMPENING_PARAM, MAX_MOVES_PARAM, PER_BALANCE_LOAD_PARAM, recentlyShedIds, shed, TOLERANCE_PARAM, type Surplus } from './tao';
import type { StrategyFactory } from './types';

export const loadAverage: StrategyFactory = {
  name: 'load_average',
  description: 'TAO LoadAverage: random binding; a member more than 80 % (or 2x or more) above the average sheds its surplus.',
  adaptive: true,
  params: [
    TOLERANCE_PARAM,
    DAMPENING_PARAM,
    PER_BALANCE_LOAD_PARAM,
    {
      name: 'averageDiff',
      description: 'Advise a member more than this fraction above the average load (TAO: 0.8).',
      unit: 'fraction of average',
      default: 0.8,
      min: 0,
      max: 100,
    },
    MAX_MOVES_PARAM,
  ],
  create(params) {
    const tolerance = params['tolerance']!;
    const cutoff = params['averageDiff']!;
    const maxMoves = params['maxMoves']!;
    return {
      name: 'load_average',
      adaptive: true,
      choose: (input) => Math.min(input.members.length - 1, Math.floor(input.random() * input.members.length)),
      plan(input) {
        const average = input.members.reduce((s, m) => s + m.load / tolerance, 0) / input.members.length;
        if (!(average > 0)) return [];
        const surpluses: Surplus[] = [];
        for (const m of input.members) {
          const e = m.load / tolerance;
          const diff = e / average - 1;
          if (e > average && (diff > cutoff || diff >= 1)) surpluses.push({ memberId: m.id, amount: (e - average) * tolerance });
        }
        if (surpluses.length === 0) return [];
        return shed(new Map(input.members.map((m) => [m.id, m.load])), input.clients, surpluses, maxMoves, recentlyShedIds(input.members));
      },
    };
  },
};

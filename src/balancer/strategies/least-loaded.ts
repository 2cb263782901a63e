/**
 * least_loaded (TAO LeastLoaded): binds to the member with the least
 * effective load (ties within 5 % broken at random), never to a member at or
 * above the reject threshold; if every member is, the binding is refused.
 * In on-demand groups, a member whose effective load exceeds the critical
 * threshold sheds its surplus above it (TAO: alerted, rejects everything),
 * to members that stay below the threshold. Thresholds are in effective
 * load units; 0 disables each, as in TAO.
 */
import { chooseLeastLoaded } from './choose';
import { DAMPENING_PARAM, MAX_MOVES_PARAM, PER_BALANCE_LOAD_PARAM, recentlyShedIds, shed, TOLERANCE_PARAM, withEffectiveLoads, type Surplus } from './tao';
import type { StrategyFactory } from './types';

export const leastLoaded: StrategyFactory = {
  name: 'least_loaded',
  description: 'TAO LeastLoaded: least effective load; reject threshold for new bindings; sheds the surplus above the critical threshold.',
  adaptive: true,
  params: [
    TOLERANCE_PARAM,
    DAMPENING_PARAM,
    PER_BALANCE_LOAD_PARAM,
    {
      name: 'criticalThreshold',
      description: 'A member above this effective load sheds the surplus (0 = never).',
      unit: 'effective load',
      default: 0,
      min: 0,
      max: 1e12,
    },
    {
      name: 'rejectThreshold',
      description: 'No new binding to a member at or above this effective load (0 = no limit).',
      unit: 'effective load',
      default: 0,
      min: 0,
      max: 1e12,
    },
    MAX_MOVES_PARAM,
  ],
  create(params) {
    const tolerance = params['tolerance']!;
    const perBalance = params['perBalanceLoad']!;
    const critical = params['criticalThreshold']!;
    const reject = params['rejectThreshold']!;
    const maxMoves = params['maxMoves']!;
    return {
      name: 'least_loaded',
      adaptive: true,
      choose(input) {
        const scaled = withEffectiveLoads(input, perBalance, tolerance);
        if (reject <= 0) return chooseLeastLoaded({ ...input, members: scaled, compact: undefined });
        const allowed: number[] = [];
        for (let i = 0; i < scaled.length; i++) if (scaled[i]!.load < reject) allowed.push(i);
        if (allowed.length === 0) return -1;
        return allowed[chooseLeastLoaded({ ...input, members: allowed.map((i) => scaled[i]!), compact: undefined })]!;
      },
      plan(input) {
        if (critical <= 0) return [];
        const loads = new Map(input.members.map((m) => [m.id, m.load]));
        const threshold = critical * tolerance; // back in load units
        const surpluses: Surplus[] = input.members.filter((m) => m.load > threshold).map((m) => ({ memberId: m.id, amount: m.load - threshold }));
        if (surpluses.length === 0) return [];
        return shed(loads, input.clients, surpluses, maxMoves, recentlyShedIds(input.members), (_id, after) => after <= threshold);
      },
    };
  },
};

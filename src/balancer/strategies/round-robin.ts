/**
 * round_robin: non-adaptive. New bindings (or proxied calls) go to the
 * members in turn; clients are never moved.
 */
import type { StrategyFactory } from './types';

export const roundRobin: StrategyFactory = {
  name: 'round_robin',
  description: 'Members in turn; never moves a bound client.',
  adaptive: false,
  params: [],
  create() {
    return {
      name: 'round_robin',
      adaptive: false,
      choose: (input) => input.sequence % input.members.length,
      plan: () => [],
    };
  },
};

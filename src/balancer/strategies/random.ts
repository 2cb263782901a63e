/**
 * random: non-adaptive. New bindings (or proxied calls) go to a member
 * chosen uniformly at random; clients are never moved.
 */
import type { StrategyFactory } from './types';

export const random: StrategyFactory = {
  name: 'random',
  description: 'A member chosen uniformly at random; never moves a bound client.',
  adaptive: false,
  params: [],
  create() {
    return {
      name: 'random',
      adaptive: false,
      choose: (input) => Math.min(input.members.length - 1, Math.floor(input.random() * input.members.length)),
      plan: () => [],
    };
  },
};

/**
 * p2c: power of two choices (Mitzenmacher, "The Power of Two Choices in
 * Randomized Load Balancing", 2001; as in Finagle and tower's p2c balancer).
 * For each new binding (or proxied call) it draws two distinct members at
 * random and takes the one with the lower projected load. With stale load
 * information (loads arrive once per report interval) always taking the
 * apparent least-loaded member herds every choice onto it until the next
 * report; the best of two random choices stays within a small factor of the
 * optimum and does not herd. It does not move bound clients.
 */
import { projectedLoad } from './choose';
import type { StrategyFactory } from './types';

export const p2c: StrategyFactory = {
  name: 'p2c',
  description: 'Best of two members drawn at random, by projected load; never moves a bound client.',
  adaptive: true,
  params: [],
  create() {
    return {
      name: 'p2c',
      adaptive: true,
      choose(input) {
        const n = input.members.length;
        if (n === 1) return 0;
        const first = Math.min(n - 1, Math.floor(input.random() * n));
        let second = Math.min(n - 2, Math.floor(input.random() * (n - 1)));
        if (second >= first) second++;
        return projectedLoad(input, second) < projectedLoad(input, first) ? second : first;
      },
      plan: () => [],
    };
  },
};

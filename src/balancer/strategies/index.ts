/**
 * The one visible list of strategies, by name. Adding a strategy means
 * writing a pure module beside this file and listing it here.
 */
import { leastLoaded } from './least-loaded';
import { loadAverage } from './load-average';
import { loadMinimum } from './load-minimum';
import { minimumDispersion } from './minimum-dispersion';
import { p2c } from './p2c';
import { random } from './random';
import { roundRobin } from './round-robin';
import type { StrategyFactory } from './types';

/** Every strategy, by name. Non-adaptive first, then TAO's adaptive set, then rebind's own. */
export const STRATEGIES: readonly StrategyFactory[] = [roundRobin, random, leastLoaded, loadMinimum, loadAverage, minimumDispersion, p2c];

const byName = new Map(STRATEGIES.map((s) => [s.name, s]));

/** The factory registered under `name`, or undefined. */
export function strategyFactory(name: string): StrategyFactory | undefined {
  return byName.get(name);
}

/** Names of all registered strategies, for error messages and docs. */
export function strategyNames(): string[] {
  return STRATEGIES.map((s) => s.name);
}

export type { Strategy, StrategyFactory, MemberLoad, ClientLoad, Move, ChooseInput, PlanInput } from './types';

/**
 * The one visible list of strategies, by name. Adding a strategy means
 * writing a pure module beside this file and listing it here.
 */
import { minimumDispersion } from './minimum-dispersion';
import { roundRobin } from './round-robin';
import type { StrategyFactory } from './types';

export const STRATEGIES: readonly StrategyFactory[] = [roundRobin, minimumDispersion];

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

/**
 * Validation of strategy parameters against their specs: every problem is an
 * error naming the parameter and the accepted range.
 */
import type { ParamSpec, RawParams, StrategyFactory } from './types';

/** Result of parsing: the full parameter set, or the list of problems. */
export type ParsedParams = { ok: true; params: Record<string, number> } | { ok: false; errors: string[] };

function describeRange(spec: ParamSpec): string {
  const low = spec.minInclusive === false ? `> ${spec.min}` : `>= ${spec.min}`;
  return `${spec.integer ? 'an integer' : 'a number'} ${low} and <= ${spec.max}${spec.unit ? ` (${spec.unit})` : ''}`;
}

/**
 * Checks `raw` against the factory's parameter specs, filling defaults.
 * `where` prefixes error messages ("groups[0].strategy.params").
 */
export function parseParams(factory: StrategyFactory, raw: RawParams | undefined, where: string): ParsedParams {
  const errors: string[] = [];
  const params: Record<string, number> = {};
  const known = new Set(factory.params.map((p) => p.name));
  if (raw !== undefined && (typeof raw !== 'object' || raw === null || Array.isArray(raw))) {
    return { ok: false, errors: [`${where} must be an object`] };
  }
  for (const key of Object.keys(raw ?? {})) {
    if (!known.has(key)) {
      const accepted = [...known].join(', ') || 'none';
      errors.push(`${where}.${key} is not a parameter of strategy ${factory.name} (accepted: ${accepted})`);
    }
  }
  for (const spec of factory.params) {
    const value = raw?.[spec.name];
    if (value === undefined) {
      if (spec.default !== null) params[spec.name] = spec.default;
      continue;
    }
    const belowMin = typeof value === 'number' && (spec.minInclusive === false ? value <= spec.min : value < spec.min);
    if (
      typeof value !== 'number' ||
      !Number.isFinite(value) ||
      belowMin ||
      value > spec.max ||
      (spec.integer === true && !Number.isInteger(value))
    ) {
      errors.push(`${where}.${spec.name} is ${JSON.stringify(value)}; it must be ${describeRange(spec)}`);
      continue;
    }
    params[spec.name] = value;
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, params };
}

/** Argument parsers for the CLI: each failure says what is accepted. */
import { InvalidArgumentError } from 'commander';
import { parseHostPort } from '../common/address';

export function hostPort(value: string): string {
  const parsed = parseHostPort(value.replace(/:0$/, ':1'));
  if (typeof parsed === 'string') throw new InvalidArgumentError(`${parsed}; expected host:port, e.g. 127.0.0.1:50052`);
  return value;
}

export function positiveInteger(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`expected a positive integer, got "${value}"`);
  return n;
}

/**
 * Run by test/unit/young-list.test.ts in a child node with
 * --allow-natives-syntax and a 1 MiB young generation: keeps arrays from an
 * array literal and from youngList() alive across many scavenges (what a
 * long-lived stream's lists do to their allocation sites), then prints how
 * many new arrays from each are born in the old generation.
 */
import { youngList } from '../../src/h2/frames';

const inYoungGeneration = new Function('x', 'return %InYoungGeneration(x)') as (x: unknown) => boolean;
const optimize = new Function('f', '%PrepareFunctionForOptimization(f); f(); f(); %OptimizeFunctionOnNextCall(f); f();') as (f: () => unknown) => void;

function fromLiteral(): string[] {
  return [];
}
function fromYoungList(): string[] {
  return youngList<string>();
}

const kept: unknown[] = [];
for (let round = 0; round < 400; round++) {
  for (let i = 0; i < 5000; i++) kept.push(fromLiteral(), fromYoungList());
  // Garbage, so that scavenges run while the kept arrays survive them.
  for (let i = 0; i < 20000; i++) void new Array(16);
}
optimize(fromLiteral);
optimize(fromYoungList);
let literalOld = 0;
let youngListOld = 0;
for (let i = 0; i < 100; i++) {
  if (!inYoungGeneration(fromLiteral())) literalOld++;
  if (!inYoungGeneration(fromYoungList())) youngListOld++;
}
process.stdout.write(`${JSON.stringify({ literalOld, youngListOld, kept: kept.length })}\n`);

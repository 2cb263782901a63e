/**
 * The README's code is real: its snippets are the files in
 * examples/quickstart, quoted verbatim, and the quickstart runs.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../examples/quickstart/main';
import { builtinGroupDefaults } from '../../src/balancer/config';
import { STRATEGIES } from '../../src/balancer/strategies/index';

const root = path.join(__dirname, '../..');
const readme = readFileSync(path.join(root, 'README.md'), 'utf8');

describe('README', () => {
  it.each(['replica.ts', 'client.ts'])('quotes examples/quickstart/%s verbatim', (file) => {
    const source = readFileSync(path.join(root, 'examples/quickstart', file), 'utf8').trimEnd();
    expect(readme).toContain(source);
  });

  it('quotes the quickstart main verbatim (without its command-line stub)', () => {
    const source = readFileSync(path.join(root, 'examples/quickstart/main.ts'), 'utf8').split('\n\nif (require.main')[0]!;
    expect(readme).toContain(source);
  });

  it('the quickstart binds four clients round-robin over two replicas', async () => {
    expect(await main()).toEqual(['A', 'B', 'A', 'B']);
  });

  it('documents every group setting and every strategy parameter it validates', () => {
    for (const key of Object.keys(builtinGroupDefaults())) expect(readme).toContain(`| \`${key}\``);
    for (const s of STRATEGIES) for (const p of s.params) expect(readme).toContain(`| \`${p.name}\``);
  });
});

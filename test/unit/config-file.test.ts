import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { parseBalancerConfig, serializeBalancerConfig } from '../../src/balancer/config';
import { parseConfigText, readConfigFile } from '../../src/balancer/config-file';

const yamlConfig = `
listen: 127.0.0.1:50051
controlListen: 127.0.0.1:50052
groups:
  - name: stock.SessionFactory
    granularity: on-demand
    strategy:
      name: least_loaded
      params: { criticalThreshold: 160, rejectThreshold: 400, tolerance: 1, dampening: 0.3 }
    metric: in_flight
    reportIntervalMs: 500
  - name: quotes
    granularity: per-request
    strategy: p2c
`;

describe('configuration files', () => {
  it('reads YAML with every strategy and metric name', () => {
    const result = parseConfigText(yamlConfig, 'balancer.yaml');
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.value.groups[0]).toMatchObject({ metric: 'in_flight', strategy: { name: 'least_loaded', params: { criticalThreshold: 160, dampening: 0.3 } } });
    expect(result.value.groups[1]).toMatchObject({ granularity: 'per-request', strategy: { name: 'p2c' } });
  });

  it.each(['json', 'yaml'])('round-trips through %s: parse -> serialize -> parse', (format) => {
    const first = parseConfigText(yamlConfig, 'a.yaml');
    if (!first.ok) throw new Error(first.errors.join());
    const plain = serializeBalancerConfig(first.value);
    const text = format === 'json' ? JSON.stringify(plain, null, 2) : stringify(plain);
    const again = parseConfigText(text, `b.${format}`);
    expect(again).toEqual(first);
  });

  it('names the file, line and column of a syntax error', () => {
    const yaml = parseConfigText('groups: [\n', 'bad.yaml');
    expect(yaml.ok).toBe(false);
    if (!yaml.ok) expect(yaml.errors[0]).toMatch(/^bad\.yaml: not valid YAML: .* at line \d+, column \d+$/);
    const json = parseConfigText('{"groups": [}', 'bad.json');
    expect(json.ok).toBe(false);
    if (!json.ok) expect(json.errors[0]).toContain('bad.json: not valid JSON');
  });

  it('prefixes validation errors with the file name and reports all of them', () => {
    const result = parseConfigText('groups:\n  - name: a\n    granularity: sometimes\n    metric: vibes\n', 'c.yaml');
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.errors).toHaveLength(2);
      expect(result.errors.every((e) => e.startsWith('c.yaml: groups[0].'))).toBe(true);
    }
  });

  it('rejects duplicate keys (a YAML foot-gun) and unreadable files', () => {
    expect(parseConfigText('listen: a:1\nlisten: b:2\n', 'd.yaml').ok).toBe(false);
    const missing = readConfigFile('/nonexistent/rebind.yaml');
    expect(missing).toEqual({ ok: false, errors: ['cannot read configuration file /nonexistent/rebind.yaml: no such file'] });
    const dir = mkdtempSync(path.join(tmpdir(), 'rebind-'));
    const file = path.join(dir, 'ok.json');
    writeFileSync(file, JSON.stringify({ groups: [{ name: 'g' }] }));
    expect(readConfigFile(file).ok).toBe(true);
  });

  it('validates every strategy parameter: unknown, out of range, wrong type', () => {
    const bad = parseBalancerConfig({
      groups: [
        { name: 'a', strategy: { name: 'least_loaded', params: { tolerance: 0.5 } } },
        { name: 'b', strategy: { name: 'load_minimum', params: { minimumDiff: 'x' } } },
        { name: 'c', strategy: { name: 'load_average', params: { dampening: 1 } } },
        { name: 'd', strategy: { name: 'p2c', params: { k: 3 } } },
        { name: 'e', strategy: { name: 'least_loaded', params: { maxMoves: 2.5 } } },
      ],
    });
    expect(bad.ok).toBe(false);
    if (bad.ok) return;
    expect(bad.errors).toEqual([
      'groups[0].strategy.params.tolerance is 0.5; it must be a number >= 1 and <= 1000000 (divisor)',
      'groups[1].strategy.params.minimumDiff is "x"; it must be a number >= 0 and <= 100 (fraction of minimum)',
      'groups[2].strategy.params.dampening is 1; it must be a number >= 0 and <= 0.999999 (0 <= d < 1)',
      'groups[3].strategy.params.k is not a parameter of strategy p2c (accepted: none)',
      'groups[4].strategy.params.maxMoves is 2.5; it must be an integer >= 1 and <= 10000 (moves)',
    ]);
  });
});

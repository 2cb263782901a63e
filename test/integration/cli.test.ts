/**
 * The rebind CLI as a user runs it: separate processes, exit codes, error
 * messages that say what is accepted.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Balancer } from '../../src/index';
import { startBalancer, waitFor } from '../support/cluster';

const root = path.join(__dirname, '../..');
const tsx = path.join(root, 'node_modules/.bin/tsx');
const cli = path.join(root, 'src/cli/main.ts');

/** Runs the CLI in its own process (asynchronously: the balancer under test lives in this one). */
function rebind(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(tsx, [cli, ...args], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, REBIND_LOG_LEVEL: 'silent' } }, (err, stdout, stderr) => {
      const exitCode = (err as { code?: unknown } | null)?.code;
      resolve({ code: err === null ? 0 : typeof exitCode === 'number' ? exitCode : 1, stdout, stderr });
    });
  });
}

const dir = mkdtempSync(path.join(tmpdir(), 'rebind-cli-'));

describe('rebind balancer', () => {
  it('exits 2 and names every invalid field of the configuration', async () => {
    const file = path.join(dir, 'bad.yaml');
    writeFileSync(file, 'groups:\n  - name: g\n    granularity: hourly\n    reportIntervalMs: 1\n');
    const r = await rebind('balancer', '--config', file);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('invalid configuration (2 problems)');
    expect(r.stderr).toContain('groups[0].granularity is "hourly"; it must be one of per-session, per-request, on-demand');
    expect(r.stderr).toContain('groups[0].reportIntervalMs is 1; it must be an integer >= 10 and <= 600000 (ms)');
  });

  it('--check validates a good configuration and exits 0', async () => {
    const file = path.join(dir, 'good.json');
    writeFileSync(file, JSON.stringify({ groups: [{ name: 'g', strategy: 'p2c' }] }));
    const r = await rebind('balancer', '--config', file, '--check');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('valid (1 group)');
  });

  it('a missing --config is a usage error', async () => {
    const r = await rebind('balancer');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("required option '-c, --config <file>' not specified");
  });
});

describe('rebind set-strategy / set-granularity', () => {
  let balancer: Balancer;
  beforeAll(async () => {
    balancer = await startBalancer([{ name: 'echo', granularity: 'per-session', strategy: 'round_robin' }]);
  });
  afterAll(() => balancer.stop());

  it('changes the strategy and prints the group', async () => {
    const r = await rebind('set-strategy', '-b', balancer.controlAddress, '-g', 'echo', '-s', 'load_minimum', '-p', '{"minimumDiff":0.3}');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('strategy load_minimum');
    expect(balancer.registry.groups.get('echo')!.config.strategy).toMatchObject({ name: 'load_minimum', params: { minimumDiff: 0.3 } });
  });

  it('changes the granularity', async () => {
    const r = await rebind('set-granularity', '-b', balancer.controlAddress, '-g', 'echo', '--granularity', 'on-demand');
    expect(r.code).toBe(0);
    expect(balancer.registry.groups.get('echo')!.granularity).toBe('on-demand');
  });

  it('refuses an unknown strategy before calling, listing the accepted ones', async () => {
    const r = await rebind('set-strategy', '-b', balancer.controlAddress, '-g', 'echo', '-s', 'best');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('Allowed choices are round_robin, random, least_loaded, load_minimum, load_average, minimum_dispersion, p2c');
  });

  it("reports the balancer's refusal and exits 1", async () => {
    const r = await rebind('set-strategy', '-b', balancer.controlAddress, '-g', 'echo', '-s', 'least_loaded', '-p', '{"rejectThreshold":-1}');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('INVALID_ARGUMENT: params.rejectThreshold is -1');
  });

  it('says when the balancer cannot be reached', async () => {
    const r = await rebind('set-granularity', '-b', '127.0.0.1:1', '-g', 'echo', '--granularity', 'per-request');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("cannot reach the balancer's control address 127.0.0.1:1");
  });
});

describe('rebind replica with several balancers', () => {
  it('-b given twice attaches the replica to both balancers', async () => {
    const balancers = await Promise.all([0, 1].map(() => startBalancer([{ name: 'stock' }])));
    const child = spawn(process.execPath, ['--import', 'tsx', cli, 'replica', '-b', balancers[0]!.controlAddress, '-b', balancers[1]!.controlAddress, '-n', 'multi', '--exit-with-parent'], {
      cwd: root,
      stdio: ['pipe', 'pipe', 'inherit'],
      env: { ...process.env, REBIND_LOG_LEVEL: 'silent' },
    });
    try {
      const line = await new Promise<string>((resolve, reject) => {
        createInterface({ input: child.stdout! }).on('line', (l) => l.startsWith('replica multi serving') && resolve(l));
        child.once('exit', (code) => reject(new Error(`rebind replica exited with ${code}`)));
      });
      expect(line).toContain(`of group stock at ${balancers[0]!.controlAddress}, ${balancers[1]!.controlAddress}`);
      // "serving" is printed once the first balancer has it (waitForAttach); the second attachment may land a moment later.
      const members = () => balancers.map((b) => b.registry.groups.get('stock')?.members.size ?? 0);
      await waitFor(() => members().every((n) => n === 1), 10_000, 20, 'the replica to be a member at both balancers');
      expect(members()).toEqual([1, 1]);
      const tooMany = await rebind('replica', ...Array.from({ length: 17 }, (_, i) => ['-b', `127.0.0.1:${3000 + i}`]).flat());
      expect([tooMany.code, tooMany.stderr]).toEqual([1, expect.stringContaining('--balancer lists 17 balancers; at most 16')]);
    } finally {
      child.kill('SIGKILL');
      await Promise.all(balancers.map((b) => b.stop()));
    }
  });
});

describe('rebind xds-bootstrap', () => {
  it('prints a bootstrap naming the control address, the node id and xds_v3; refuses a bad group or node id with exit 2', async () => {
    const ok = await rebind('xds-bootstrap', '--group', 'stock.SessionFactory', '--node-id', 'trader-7', '--balancer', '127.0.0.1:50052');
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toEqual({
      xds_servers: [{ server_uri: '127.0.0.1:50052', channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
      node: { id: 'trader-7', locality: {}, metadata: { rebind_group: 'stock.SessionFactory' } },
    });
    const random = JSON.parse((await rebind('xds-bootstrap', '--group', 'echo')).stdout) as { node: { id: string } };
    expect(random.node.id).toMatch(/^rebind-xds-[A-Za-z0-9_-]{12}$/);
    const badGroup = await rebind('xds-bootstrap', '--group', 'no spaces');
    expect([badGroup.code, badGroup.stderr]).toEqual([2, expect.stringContaining('--group must be')]);
    const badNode = await rebind('xds-bootstrap', '--group', 'echo', '--node-id', 'x'.repeat(300));
    expect([badNode.code, badNode.stderr]).toEqual([2, expect.stringContaining('--node-id must be')]);
  });

  it('--balancer given several times lists several xds_servers in that order (gRFC A71 fallback); refuses duplicates and more than 16', async () => {
    const ok = await rebind('xds-bootstrap', '--group', 'echo', '--node-id', 'n1', '--balancer', '127.0.0.1:50052', '--balancer', '127.0.0.2:50052', '--balancer', 'balancer-c.example:50052');
    expect(ok.code).toBe(0);
    const servers = (JSON.parse(ok.stdout) as { xds_servers: { server_uri: string; channel_creds: unknown; server_features: string[] }[] }).xds_servers;
    expect(servers.map((s) => s.server_uri)).toEqual(['127.0.0.1:50052', '127.0.0.2:50052', 'balancer-c.example:50052']);
    for (const s of servers) expect([s.channel_creds, s.server_features]).toEqual([[{ type: 'insecure' }], ['xds_v3']]);
    const twice = await rebind('xds-bootstrap', '--group', 'echo', '--balancer', '127.0.0.1:1', '--balancer', '127.0.0.1:1');
    expect([twice.code, twice.stderr]).toEqual([2, expect.stringContaining('--balancer lists 127.0.0.1:1 twice')]);
    const many = await rebind('xds-bootstrap', '--group', 'echo', ...Array.from({ length: 17 }, (_, i) => ['--balancer', `127.0.0.1:${1000 + i}`]).flat());
    expect([many.code, many.stderr]).toEqual([2, expect.stringContaining('--balancer lists 17 balancers; at most 16')]);
  });
});

/**
 * Operators see the ledger, over real sockets: three rebind clients bound by
 * the balancer in a per-session group are listed, most recent first, by the
 * gRPC Admin service, the admin HTTP JSON, `rebind status --bindings` and
 * the metrics (clients by binding size), and the planner's last decision is
 * shown with its expected gain.
 */
import { execFile } from 'node:child_process';
import * as http from 'node:http';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminCall, adminClient } from '../../src/cli/admin-client';
import type { AdminClient } from '../../src/generated/rebind/v1/Admin';
import type { ListGroupsResponse__Output } from '../../src/generated/rebind/v1/ListGroupsResponse';
import { Balancer, clientOptions } from '../../src/index';
import type { EchoClient } from '../support/echo';
import { echoClient, startBalancer, startReplica, stopReplica, unary, type TestReplica } from '../support/cluster';

const root = path.join(__dirname, '../..');
const tsx = path.join(root, 'node_modules/.bin/tsx');
const cli = path.join(root, 'src/cli/main.ts');

function rebind(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(tsx, [cli, ...args], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, REBIND_LOG_LEVEL: 'silent' } }, (err, stdout, stderr) => {
      const exitCode = (err as { code?: unknown } | null)?.code;
      resolve({ code: err === null ? 0 : typeof exitCode === 'number' ? exitCode : 1, stdout, stderr });
    });
  });
}

function get(address: string, urlPath: string): Promise<{ status: number; body: string }> {
  const at = address.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    http
      .get({ host: address.slice(0, at), port: Number(address.slice(at + 1)), path: urlPath }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      })
      .on('error', reject);
  });
}

function metric(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

const CLIENT_IDS = ['client-one', 'client-two', 'client-three'];
let balancer: Balancer;
let admin: AdminClient;
const replicas: TestReplica[] = [];
const stubs: EchoClient[] = [];
/** The address that served each client, in CLIENT_IDS order. */
const servedAt: string[] = [];
let startedMs = 0;
let boundMs = 0;

beforeAll(async () => {
  balancer = await startBalancer([{ name: 'echo', granularity: 'per-session', strategy: 'round_robin' }]);
  for (const name of ['A', 'B']) replicas.push(await startReplica(balancer, name));
  admin = adminClient(balancer.controlAddress);
  startedMs = Date.now();
  for (const clientId of CLIENT_IDS) {
    const stub = echoClient(balancer.address, clientOptions({ clientId }));
    stubs.push(stub);
    const reply = await unary(stub, { text: clientId });
    servedAt.push(replicas.find((r) => r.name === reply.servedBy)!.address);
  }
  boundMs = Date.now();
});

afterAll(async () => {
  for (const s of stubs) s.close();
  admin?.close();
  for (const r of replicas) await stopReplica(r);
  await balancer?.stop();
});

/** The bindings expected, most recent first: one member each, bound by the balancer. */
function expectedBindings(n: number) {
  const group = balancer.registry.groups.get('echo')!;
  const idOf = (address: string) => [...group.members.values()].find((m) => m.address === address)!.id;
  return CLIENT_IDS.map((clientId, i) => ({ clientId, members: [{ memberId: idOf(servedAt[i]!), address: servedAt[i]!, permille: 1000 }], via: 'bind' }))
    .reverse()
    .slice(0, n);
}

describe('the ledger over the Admin service', () => {
  it('lists the most recent bindings asked for, the total and the size histogram', async () => {
    const reply = await adminCall<ListGroupsResponse__Output>(admin, balancer.controlAddress, 'ListGroups', { group: 'echo', bindings: 2 });
    const g = reply.groups[0]!;
    expect(g.bindingCount).toBe(3);
    expect(g.bindingSizes).toEqual([0, 3]);
    expect(g.bindings.map(({ sinceUnixMs: _, ...b }) => b)).toEqual(expectedBindings(2));
    for (const b of g.bindings) {
      expect(b.sinceUnixMs).toBeGreaterThanOrEqual(startedMs);
      expect(b.sinceUnixMs).toBeLessThanOrEqual(boundMs);
    }
    expect(g.lastPlan).toBeNull();
    // Not asked: none listed, still counted.
    const plain = (await adminCall<ListGroupsResponse__Output>(admin, balancer.controlAddress, 'ListGroups', { group: 'echo' })).groups[0]!;
    expect(plain.bindings).toEqual([]);
    expect(plain.bindingCount).toBe(3);
  });

  it('refuses to list more than the cap', async () => {
    await expect(adminCall(admin, balancer.controlAddress, 'ListGroups', { group: 'echo', bindings: 1001 })).rejects.toThrow('INVALID_ARGUMENT: bindings must be an integer 0..1000');
  });
});

describe('the ledger over the admin HTTP port', () => {
  it('/api/state lists as many bindings as asked for, and the dashboard default otherwise', async () => {
    const answer = await get(balancer.adminAddress, '/api/state?bindings=1');
    expect(answer.status).toBe(200);
    const g = JSON.parse(answer.body).groups[0];
    expect(g).toMatchObject({ bindingCount: 3, bindingSizes: [0, 3], lastPlan: null });
    expect(g.bindings.map(({ sinceUnixMs: _, ...b }: { sinceUnixMs: number }) => b)).toEqual(expectedBindings(1));
    const all = JSON.parse((await get(balancer.adminAddress, '/api/state')).body).groups[0];
    expect(all.bindings.map(({ sinceUnixMs: _, ...b }: { sinceUnixMs: number }) => b)).toEqual(expectedBindings(3));
  });

  it('refuses a bad bindings parameter with 400', async () => {
    for (const bad of ['1001', '-1', 'many', '2.5']) {
      const answer = await get(balancer.adminAddress, `/api/state?bindings=${bad}`);
      expect(answer.status, bad).toBe(400);
      expect(JSON.parse(answer.body).error).toContain('bindings must be an integer 0..1000');
    }
  });
});

describe('rebind status and the metrics', () => {
  it('prints the size histogram, the last plan and, with --bindings, the most recent bindings', async () => {
    const r = await rebind('status', '-b', balancer.controlAddress, '--bindings', '5');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('  bindings 3 (1 member: 3)\n');
    expect(r.stdout).toContain('  last plan: none\n');
    for (const b of expectedBindings(3)) expect(r.stdout).toMatch(new RegExp(`\\n    ${b.clientId} +${b.members[0]!.address}=1000 +bind +\\d+ s ago\\n`));
    // Most recent first.
    expect(r.stdout.indexOf('client-three')).toBeLessThan(r.stdout.indexOf('client-one'));
    // Without --bindings, none are listed.
    const plain = await rebind('status', '-b', balancer.controlAddress);
    expect(plain.code).toBe(0);
    expect(plain.stdout).toContain('  bindings 3 (1 member: 3)\n');
    expect(plain.stdout).not.toContain('client-one');
  }, 60_000);

  it('counts clients by binding size', async () => {
    const text = (await get(balancer.adminAddress, '/metrics')).body;
    expect(metric(text, 'rebind_bindings{group="echo",size="1"}')).toBe(3);
    expect(metric(text, 'rebind_bindings{group="echo",size="2"}')).toBe(0);
    expect(metric(text, 'rebind_bindings{group="echo",size="16"}')).toBe(0);
    expect(metric(text, 'rebind_bindings{group="echo",size="17"}')).toBeUndefined();
    expect(metric(text, 'rebind_plan_dispersion_before{group="echo"}')).toBeUndefined();
  });

  it('shows the last plan: its age, moves and expected gain', async () => {
    // A plan needs an on-demand group under load; its record is what operators
    // are shown, so one is put in place with known numbers.
    const group = balancer.registry.groups.get('echo')!;
    const [m1, m2] = [...group.members.values()];
    group.lastPlan = {
      atMs: Date.now() - 3000,
      moves: [
        { clientId: 'client-one', from: m1!.id, to: m2!.id, load: 40 },
        { clientId: 'client-two', from: m1!.id, to: m2!.id, load: 60 },
      ],
      bindings: [],
      dispersionBefore: 80_000,
      dispersionAfter: 20_000,
    };
    const r = await rebind('status', '-b', balancer.controlAddress);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/\n {2}last plan \d+ s ago: 2 moves, dispersion 80000 -> 20000 \(-75 %\)\n/);
    const text = (await get(balancer.adminAddress, '/metrics')).body;
    expect(metric(text, 'rebind_plan_dispersion_before{group="echo"}')).toBe(80_000);
    expect(metric(text, 'rebind_plan_dispersion_after{group="echo"}')).toBe(20_000);
    const plan = JSON.parse((await get(balancer.adminAddress, '/api/state')).body).groups[0].lastPlan;
    expect(plan).toMatchObject({ moveCount: 2, dispersionBefore: 80_000, dispersionAfter: 20_000 });
    expect(plan.moves[1]).toEqual({ clientId: 'client-two', fromMemberId: m1!.id, fromAddress: m1!.address, toMemberId: m2!.id, toAddress: m2!.address, load: 60 });
  }, 60_000);
});

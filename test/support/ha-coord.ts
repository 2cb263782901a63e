/**
 * HA test harness: balancers with `ha` on one real etcd (bench/lib/etcd.ts),
 * each test under its own etcd prefix; a balancer as a child process (the
 * CLI under tsx) that can be SIGKILLed; an imbalance the planner acts on.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { clientOptions, type Balancer } from '../../src/index';
import type { Coordinator } from '../../src/balancer/ha/coordinator';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import { EtcdProcess, ensureEtcd } from '../../bench/lib/etcd';
import { track } from '../../bench/lib/processes';
import type { EchoClient } from './echo';
import { echoClient, startBalancer, startReplica, stopReplica, unary, waitFor, type TestReplica } from './cluster';
import { openLoop, type LoadClient } from './load';

const root = path.join(__dirname, '../..');

export interface EtcdForFile {
  /** The file's etcd (started before its first test). */
  etcd(): EtcdProcess;
  /** Run (last added first) after each test. */
  cleanups: (() => Promise<unknown> | unknown)[];
}

/**
 * Registers an HA test file's hooks: one real etcd for the file (installed
 * if needed; when it cannot be, every test is skipped with the reason),
 * cleanups after each test, etcd stopped after the last.
 */
export function useEtcd(): EtcdForFile {
  let skip: string | null = null;
  let etcd: EtcdProcess | null = null;
  const cleanups: (() => Promise<unknown> | unknown)[] = [];
  beforeAll(async () => {
    const available = await ensureEtcd();
    if (typeof available === 'string') {
      skip = available;
      console.warn(`HA tests skipped: ${available}`);
    } else etcd = await EtcdProcess.start();
  }, 300_000);
  beforeEach((ctx) => {
    if (skip !== null) ctx.skip(`etcd unavailable: ${skip}`);
  });
  afterEach(async () => {
    for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => undefined);
    cleanups.length = 0;
  });
  afterAll(async () => {
    await etcd?.stop();
  });
  return {
    etcd: () => {
      if (etcd === null) throw new Error('etcd is not started');
      return etcd;
    },
    cleanups,
  };
}

/** A fresh etcd key prefix: tests sharing one etcd do not see each other. */
export function freshPrefix(): string {
  return `/t-${randomBytes(4).toString('hex')}/`;
}

export function haSection(endpoint: string, prefix: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { etcd: { endpoints: [endpoint], prefix }, leaseTtlMs: 2000, ...extra };
}

/** An in-process balancer with `ha`. */
export function startHaBalancer(endpoint: string, prefix: string, groups: Record<string, unknown>[], ha: Record<string, unknown> = {}): Promise<Balancer> {
  return startBalancer(groups, { ha: haSection(endpoint, prefix, ha) });
}

/** The balancers that lead `group` now. */
export function leadersOf<B extends { coordinator: Coordinator | null }>(balancers: B[], group: string): B[] {
  return balancers.filter((b) => b.coordinator!.isLeader(group));
}

export interface ChildBalancer {
  data: string;
  control: string;
  admin: string;
  kill(): Promise<void>;
}

/** A balancer in its own process (`rebind balancer --config` under tsx), to be SIGKILLed. */
export async function startChildBalancer(config: Record<string, unknown>): Promise<ChildBalancer> {
  const dir = mkdtempSync(path.join(tmpdir(), 'rebind-ha-'));
  const file = path.join(dir, 'balancer.json');
  writeFileSync(file, JSON.stringify({ listen: '127.0.0.1:0', controlListen: '127.0.0.1:0', adminListen: '127.0.0.1:0', ...config }));
  // node itself with tsx as its loader (not the tsx wrapper, which would outlive a SIGKILL of its own and stop the balancer cleanly).
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src/cli/main.ts'), 'balancer', '--config', file, '--exit-with-parent'], {
    cwd: root,
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, REBIND_LOG_LEVEL: 'error' },
  });
  const tracked = track(child);
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const m = /^balancer listening: data (\S+), control ([^\s,]+)(?:, admin (\S+))?$/.exec(line);
      if (m !== null) resolve({ data: m[1]!, control: m[2]!, admin: m[3] ?? '', kill: () => tracked.stop('SIGKILL') });
    });
    void tracked.exited.then(() => reject(new Error('child balancer exited before it was ready')));
  });
}

export interface Imbalance {
  replicas: TestReplica[];
  loads: LoadClient[];
  stubs: EchoClient[];
  stop(): Promise<void>;
}

/**
 * Two replicas attached to `balancer`; three rebind clients bind while only
 * the first is there, a fourth to the second: 3:1 at 40 calls/s each, which
 * minimum_dispersion plans to even out (one client moves).
 */
export async function imbalance(balancer: Balancer, group: string, names: [string, string]): Promise<Imbalance> {
  const a = await startReplica(balancer, names[0], group);
  const stubs = [0, 1, 2, 3].map(() => echoClient(balancer.address, clientOptions()));
  for (const s of stubs.slice(0, 3)) await unary(s, { text: 'bind' });
  const b = await startReplica(balancer, names[1], group);
  const g = balancer.registry.groups.get(group)!;
  await waitFor(() => g.members.size === 2, 5000, 20, 'both replicas attached');
  await unary(stubs[3]!, { text: 'bind' });
  const loads = stubs.map((s) => openLoop(s, 40));
  return {
    replicas: [a, b],
    loads,
    stubs,
    stop: async () => {
      await Promise.all(loads.map((l) => l.stop()));
      for (const s of stubs) s.close();
      await Promise.all([a, b].map((r) => stopReplica(r)));
    },
  };
}

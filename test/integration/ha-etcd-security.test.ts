/**
 * `ha.etcd.tls` and `ha.etcd.auth` against a real etcd: one that requires
 * client certificates (https), one with authentication enabled (a user
 * limited to the balancers' prefix). Balancers with the right credentials
 * coordinate (one leader, switches reach the other); a balancer with the wrong
 * ones still starts and serves binds, reports etcd down (degraded /healthz),
 * leads nothing, and says why in one log line.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { EtcdProcess, ensureEtcd } from '../../bench/lib/etcd';
import { Balancer, clientOptions } from '../../src/index';
import { echoClient, sleep, startReplica, stopReplica, unary, waitFor } from '../support/cluster';
import { freshPrefix, leadersOf } from '../support/ha-coord';
import { makePki, type TestPki } from '../support/tls';

const GROUPS = [{ name: 'echo', granularity: 'on-demand', strategy: 'round_robin', reportIntervalMs: 500 }];
/** How long a balancer with wrong credentials is watched for (it must never get etcd up nor lead, nor log each retry: its retries back off 100, 200, 400, 800 ms), ms. */
const REFUSED_WATCH_MS = 1500;

let skip: string | null = null;
const cleanups: (() => Promise<unknown> | unknown)[] = [];

beforeAll(async () => {
  const available = await ensureEtcd();
  if (typeof available === 'string') {
    skip = available;
    console.warn(`HA etcd security tests skipped: ${available}`);
  }
}, 300_000);
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups.length = 0;
});

interface Logged {
  balancer: Balancer;
  lines: { level: number; msg: string; err?: string }[];
}

/** An in-process balancer with `ha.etcd` as given, its log lines captured. */
async function start(etcd: Record<string, unknown>, balancerId: string): Promise<Logged> {
  const lines: Logged['lines'] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as Logged['lines'][number]) });
  const balancer = await Balancer.start({
    config: { listen: '127.0.0.1:0', controlListen: '127.0.0.1:0', adminListen: '127.0.0.1:0', groups: GROUPS, ha: { etcd, balancerId, leaseTtlMs: 2000 } },
    logger,
  });
  cleanups.push(() => balancer.stop());
  return { balancer, lines };
}

const health = async (b: Balancer) => (await fetch(`http://${b.adminAddress}/healthz`)).text();

/** Two balancers with good credentials: one leader; a switch through the follower is in force on the leader. */
async function coordinate(etcd: (id: string) => Record<string, unknown>): Promise<Balancer[]> {
  const bs = [(await start(etcd('good1'), 'good1')).balancer, (await start(etcd('good2'), 'good2')).balancer];
  await waitFor(() => bs.every((b) => b.coordinator!.etcdUp) && leadersOf(bs, 'echo').length === 1, 10_000, 20, 'etcd up and one leader');
  expect(await Promise.all(bs.map(health))).toEqual(['ok\n', 'ok\n']);
  const follower = bs.find((b) => !b.coordinator!.isLeader('echo'))!;
  const leader = leadersOf(bs, 'echo')[0]!;
  const changed = await follower.admin.changeStrategy('echo', 'p2c', '');
  expect(changed).not.toHaveProperty('code');
  await waitFor(() => leader.registry.groups.get('echo')!.strategyName === 'p2c', 5000, 10, 'the switch on the leader');
  return bs;
}

/**
 * A balancer that cannot use etcd: starts, binds a client through a forward,
 * never has etcd up, leads nothing while `others` keep their leader, answers
 * degraded, and logs the refusal once (no line per retry). Returns its warn lines.
 */
async function refused(b: Logged, others: Balancer[], degraded: RegExp): Promise<string[]> {
  const { balancer } = b;
  const replica = await startReplica(balancer, 'R', 'echo');
  cleanups.push(() => stopReplica(replica));
  const client = echoClient(balancer.address, clientOptions());
  cleanups.push(() => client.close());
  expect((await unary(client, { text: 'hi' })).servedBy).toBe('R');
  const until = Date.now() + REFUSED_WATCH_MS;
  while (Date.now() < until) {
    expect(balancer.coordinator!.etcdUp).toBe(false);
    expect(balancer.coordinator!.isLeader('echo')).toBe(false);
    await sleep(50);
  }
  expect(leadersOf(others, 'echo')).toHaveLength(1);
  expect(balancer.coordinator!.balancers().map((x) => x.id)).toEqual([]);
  expect(await health(balancer)).toMatch(degraded);
  const metrics = await (await fetch(`http://${balancer.adminAddress}/metrics`)).text();
  expect(metrics).toContain('rebind_ha_etcd_up 0');
  const warns = b.lines.filter((l) => l.level >= 40).map((l) => `${l.msg}${l.err !== undefined ? ` (${l.err})` : ''}`);
  const etcdWarns = warns.filter((w) => w.startsWith('ha: etcd') && !w.startsWith('ha: etcd watch error'));
  expect(warns.filter((w) => w.startsWith('ha: etcd watch error')).length).toBeLessThanOrEqual(1);
  expect(etcdWarns).toHaveLength(1);
  return etcdWarns;
}

describe('HA: etcd with client TLS (client certificates required)', () => {
  let pki: TestPki;
  let etcd: EtcdProcess;
  beforeAll(async () => {
    if (skip !== null) return;
    pki = makePki();
    etcd = await EtcdProcess.start({ tls: pki, clientCertAuth: true });
  }, 60_000);
  afterAll(async () => {
    await etcd?.stop();
  });
  beforeEach((ctx) => {
    if (skip !== null) ctx.skip(`etcd unavailable: ${skip}`);
  });

  it('balancers with ha.etcd.tls (CA, client certificate) coordinate; one without a client certificate or with another CA cannot use etcd but serves', async () => {
    expect(etcd.endpoint).toMatch(/^https:/);
    const prefix = freshPrefix();
    const good = { endpoints: [etcd.endpoint], prefix, tls: { caFile: pki.caFile, certFile: pki.clientCertFile, keyFile: pki.clientKeyFile } };
    const bs = await coordinate(() => good);

    const noCert = await start({ endpoints: [etcd.endpoint], prefix, tls: { caFile: pki.caFile } }, 'nocert');
    const [noCertWarn] = await refused(noCert, bs, /^degraded: etcd unreachable \(TLS handshake failed\) since \S+Z, not planning\n$/);
    console.log(`without a client certificate: ${noCertWarn}`);
    expect(noCertWarn).toMatch(/^ha: etcd TLS handshake failed \(check ha.etcd.tls.*bad certificate/);

    const other = makePki();
    const wrongCa = await start({ endpoints: [etcd.endpoint], prefix, tls: { caFile: other.caFile, certFile: other.clientCertFile, keyFile: other.clientKeyFile } }, 'wrongca');
    const [wrongCaWarn] = await refused(wrongCa, bs, /^degraded: etcd unreachable \(TLS handshake failed\) since \S+Z, not planning\n$/);
    console.log(`with another CA: ${wrongCaWarn}`);
    expect(wrongCaWarn).toMatch(/^ha: etcd TLS handshake failed \(check ha.etcd.tls/);
  }, 60_000);
});

describe('HA: etcd with authentication', () => {
  const USER = 'rebind';
  const PASSWORD = 'correct horse battery staple';
  let etcd: EtcdProcess;
  let dir: string;
  const passwordFile = (name: string, password: string) => {
    const file = path.join(dir, name);
    writeFileSync(file, `${password}\n`, { mode: 0o600 });
    return file;
  };
  beforeAll(async () => {
    if (skip !== null) return;
    dir = mkdtempSync(path.join(tmpdir(), 'rebind-etcd-auth-'));
    etcd = await EtcdProcess.start({ auth: { rootPassword: 'root-secret-123', users: [{ name: USER, password: PASSWORD, prefix: '/sec/' }] } });
  }, 60_000);
  afterAll(async () => {
    await etcd?.stop();
  });
  beforeEach((ctx) => {
    if (skip !== null) ctx.skip(`etcd unavailable: ${skip}`);
  });

  it('balancers with the right user and passwordFile coordinate; a wrong password: etcd down, degraded, a log line naming the authentication failure', async () => {
    const prefix = `/sec${freshPrefix()}`;
    const good = { endpoints: [etcd.endpoint], prefix, auth: { username: USER, passwordFile: passwordFile('good', PASSWORD) } };
    const bs = await coordinate(() => good);

    const wrong = await start({ endpoints: [etcd.endpoint], prefix, auth: { username: USER, passwordFile: passwordFile('wrong', 'not the password') } }, 'wrongpw');
    const [warn] = await refused(wrong, bs, /^degraded: etcd refused the credentials \(authentication failed\) since \S+Z, not planning\n$/);
    console.log(`with a wrong password: ${warn}`);
    expect(warn).toMatch(/authentication failed/);
    expect(warn).toContain('ha.etcd.auth');
  }, 60_000);

  it('a user without permission on the prefix: etcd down, a log line naming the permission', async () => {
    const good = { endpoints: [etcd.endpoint], prefix: `/sec${freshPrefix()}`, auth: { username: USER, passwordFile: passwordFile('good', PASSWORD) } };
    const bs = await coordinate(() => good);
    const outside = await start({ endpoints: [etcd.endpoint], prefix: freshPrefix(), auth: { username: USER, passwordFile: passwordFile('good', PASSWORD) } }, 'outside');
    const [warn] = await refused(outside, bs, /^degraded: etcd refused access \(permission denied\) since \S+Z, not planning\n$/);
    console.log(`outside the user's prefix: ${warn}`);
    expect(warn).toMatch(/permission denied/);
    expect(warn).toContain('ha.etcd.prefix');
  }, 60_000);

  it('etcd restarted (its auth tokens are gone): the balancers authenticate again and lead again, nothing restarted', async () => {
    const good = { endpoints: [etcd.endpoint], prefix: `/sec${freshPrefix()}`, auth: { username: USER, passwordFile: passwordFile('good', PASSWORD) } };
    const bs = await coordinate(() => good);
    await etcd.kill();
    await waitFor(() => bs.every((b) => !b.coordinator!.etcdUp) && leadersOf(bs, 'echo').length === 0, 10_000, 20, 'etcd down');
    await etcd.restart();
    await waitFor(() => bs.every((b) => b.coordinator!.etcdUp) && leadersOf(bs, 'echo').length === 1, 15_000, 20, 'etcd up and one leader again');
    // Stays so over several keep-alives (each on a fresh token).
    await sleep(2500);
    expect(bs.every((b) => b.coordinator!.etcdUp)).toBe(true);
    expect(leadersOf(bs, 'echo')).toHaveLength(1);
    expect(await Promise.all(bs.map(health))).toEqual(['ok\n', 'ok\n']);
  }, 60_000);
});

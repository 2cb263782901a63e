/**
 * Security hardening (issue 11): separate replica and admin credentials,
 * attachments bound to certificate identities, vouchers bound to a group
 * and short-lived, and a proxied-call marker only the balancer can set.
 * Each test failed on the code before the fix (9d54503).
 */
import * as grpc from '@grpc/grpc-js';
import * as http2 from 'node:http2';
import { afterEach, describe, expect, it } from 'vitest';
import { attach, clientEvents, clientOptions, type Balancer } from '../../src/index';
import { tokenMetadata } from '../../src/balancer/auth';
import { Voucher } from '../../src/balancer/vouch';
import { controlProto } from '../../src/common/proto';
import { clientUserAgent, FORWARD_STATUS, FORWARD_TRAILER, PROXIED_HEADER, RETRY_PUSHBACK_TRAILER, VOUCH_TRAILER } from '../../src/common/wire';
import { balancerKey, checkVoucher, voucherGroup } from '../../src/interceptors/vouch-check';
import type { AdminClient } from '../../src/generated/rebind/v1/Admin';
import { echoImplementation, EchoService, startEchoServer } from '../support/echo';
import { echoClient, startBalancer, startReplica, stopReplica, unary, waitFor } from '../support/cluster';
import { makePki } from '../support/tls';
import { answerWithForwards } from '../support/rogue';

const REPLICA_TOKEN = 'replica-token-0123456789abcdef';
const ADMIN_TOKEN = 'admin-token-0123456789abcdef';
const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups.length = 0;
});

async function balancerWith(extra: Record<string, unknown>, groups: Record<string, unknown>[] = [{ name: 'echo', reportIntervalMs: 200 }]): Promise<Balancer> {
  const b = await startBalancer(groups, extra);
  cleanups.push(() => b.stop());
  return b;
}

function adminClient(balancer: Balancer, credentials = grpc.credentials.createInsecure()): AdminClient {
  const c = new (controlProto().rebind.v1.Admin)(balancer.controlAddress, credentials) as unknown as AdminClient;
  cleanups.push(() => c.close());
  return c;
}

const setStrategy = (admin: AdminClient, token: string) =>
  new Promise<grpc.ServiceError | null>((resolve) => admin.setStrategy({ group: 'echo', strategy: 'random' }, tokenMetadata(token), (e) => resolve(e)));

describe('replica and admin credentials are separate roles', () => {
  it('the replica token attaches but cannot change strategies; the admin token changes strategies but cannot attach', async () => {
    const balancer = await balancerWith({ security: { replicaToken: REPLICA_TOKEN, adminToken: ADMIN_TOKEN } });
    const { server, address } = await startEchoServer('A');
    cleanups.push(() => server.forceShutdown());
    const asAdmin = (await attach(server, { balancer: balancer.controlAddress, group: 'echo', address, token: ADMIN_TOKEN }).catch((e) => e)) as Error;
    expect(asAdmin.message).toContain('invalid replica token');
    const replica = await attach(server, { balancer: balancer.controlAddress, group: 'echo', address, token: REPLICA_TOKEN });
    cleanups.push(() => replica.detach());
    const admin = adminClient(balancer);
    const byReplica = await setStrategy(admin, REPLICA_TOKEN);
    expect(byReplica?.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(byReplica?.details).toContain('invalid admin token');
    expect(balancer.registry.groups.get('echo')!.strategyName).toBe('minimum_dispersion');
    expect(await setStrategy(admin, ADMIN_TOKEN)).toBeNull();
    expect(balancer.registry.groups.get('echo')!.strategyName).toBe('random');
  });

  it('the old shared security.token is refused with a message naming the two roles', async () => {
    const err = (await startBalancer([{ name: 'echo' }], { security: { token: REPLICA_TOKEN } }).catch((e) => e)) as Error;
    expect(err.message).toContain('security.token');
    expect(err.message).toContain('replicaToken');
    expect(err.message).toContain('adminToken');
  });

  it('without an admin token, a control port that is not on loopback refuses changes', async () => {
    const balancer = await startBalancer([{ name: 'echo' }], { controlListen: '0.0.0.0:0' });
    cleanups.push(() => balancer.stop());
    const admin = new (controlProto().rebind.v1.Admin)(`127.0.0.1:${balancer.controlAddress.split(':').pop()}`, grpc.credentials.createInsecure()) as unknown as AdminClient;
    cleanups.push(() => admin.close());
    const err = await new Promise<grpc.ServiceError | null>((resolve) => admin.setStrategy({ group: 'echo', strategy: 'random' }, (e) => resolve(e)));
    expect(err?.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(err?.details).toContain('security.adminToken');
    expect(balancer.registry.groups.get('echo')!.strategyName).toBe('minimum_dispersion');
  });
});

describe('with mTLS, an attachment is bound to the identity in its certificate', () => {
  async function mtlsBalancer(san: string, identities?: Record<string, string[]>) {
    const pki = makePki({ clientSan: san });
    const balancer = await balancerWith({
      security: {
        replicaToken: REPLICA_TOKEN,
        controlTls: { certFile: pki.serverCertFile, keyFile: pki.serverKeyFile, caFile: pki.caFile, requireClientCert: true },
        ...(identities !== undefined ? { replicaIdentities: identities } : {}),
      },
    });
    return { pki, balancer };
  }

  it('the advertised address must match a SAN of the client certificate', async () => {
    const { pki, balancer } = await mtlsBalancer('IP:127.0.0.2');
    const { server, address } = await startEchoServer('A');
    cleanups.push(() => server.forceShutdown());
    const credentials = grpc.credentials.createSsl(pki.ca, pki.clientKey, pki.clientCert);
    // The certificate says 127.0.0.2; the replica claims 127.0.0.1.
    const err = (await attach(server, { balancer: balancer.controlAddress, group: 'echo', address, token: REPLICA_TOKEN, credentials }).catch((e) => e)) as Error;
    expect(err.message).toContain('is not an identity of the client certificate');
    expect(balancer.refusals.get('identity_mismatch')).toBe(1);
    expect(balancer.registry.groups.get('echo')!.members.size).toBe(0);
  });

  it('a matching SAN, or a configured mapping from the certificate identity, is accepted', async () => {
    const { pki, balancer } = await mtlsBalancer('IP:127.0.0.1');
    const { server, address } = await startEchoServer('A');
    cleanups.push(() => server.forceShutdown());
    const credentials = grpc.credentials.createSsl(pki.ca, pki.clientKey, pki.clientCert);
    const replica = await attach(server, { balancer: balancer.controlAddress, group: 'echo', address, token: REPLICA_TOKEN, credentials });
    cleanups.push(() => replica.detach());
    expect(replica.state).toBe('attached');
    // A certificate naming a DNS identity, mapped to one address by configuration.
    const b = await startEchoServer('B');
    const c = await startEchoServer('C');
    cleanups.push(() => b.server.forceShutdown(), () => c.server.forceShutdown());
    const mapped = await mtlsBalancer('DNS:replica-a.test', { 'replica-a.test': [b.address] });
    const mappedCredentials = grpc.credentials.createSsl(mapped.pki.ca, mapped.pki.clientKey, mapped.pki.clientCert);
    const refused = (await attach(c.server, { balancer: mapped.balancer.controlAddress, group: 'echo', address: c.address, token: REPLICA_TOKEN, credentials: mappedCredentials }).catch((e) => e)) as Error;
    expect(refused.message).toContain('is not an identity of the client certificate');
    const ok = await attach(b.server, { balancer: mapped.balancer.controlAddress, group: 'echo', address: b.address, token: REPLICA_TOKEN, credentials: mappedCredentials });
    cleanups.push(() => ok.detach());
    expect(ok.state).toBe('attached');
  });
});

describe('vouchers name the group and expire soon', () => {
  it('a voucher is good for its group and target only, and only for advisoryExpireMs plus a margin', () => {
    const voucher = new Voucher();
    const key = balancerKey(voucher.publicKey);
    const v = voucher.vouch('echo', '10.0.0.1:80', 10_000, 1_000);
    expect(voucherGroup(v)).toBe('echo');
    expect(checkVoucher(key, 'echo', '10.0.0.1:80', v, 2_000)).toBe(true);
    expect(checkVoucher(key, 'other', '10.0.0.1:80', v, 2_000)).toContain('group');
    expect(checkVoucher(key, 'echo', '10.0.0.2:80', v, 2_000)).toContain('signature');
    expect(checkVoucher(key, 'echo', '10.0.0.1:80', v, 1_000 + 10_001)).toBe('voucher expired');
  });

  it("a replica cannot send its clients to another group's member with a voucher the balancer issued for that group", async () => {
    const balancer = await balancerWith({}, [
      { name: 'echo', granularity: 'per-session', strategy: 'round_robin', reportIntervalMs: 200 },
      { name: 'other', granularity: 'per-session', strategy: 'round_robin', reportIntervalMs: 200 },
    ]);
    // A member of group "other", serving another service.
    const victim = await startEchoServer('victim');
    cleanups.push(() => victim.server.forceShutdown());
    const victimReplica = await attach(victim.server, {
      balancer: balancer.controlAddress,
      group: 'other',
      address: victim.address,
      methods: [{ path: '/other.Service/Call', kind: 'UNARY' }],
    });
    cleanups.push(() => victimReplica.detach());
    // The hostile party asks the balancer for a binding in "other" and keeps its voucher.
    const session = http2.connect(`http://${balancer.address}`);
    cleanups.push(() => void session.destroy());
    const stolen = await new Promise<string>((resolve, reject) => {
      const s = session.request({ ':method': 'POST', ':path': '/other.Service/Call', 'content-type': 'application/grpc', te: 'trailers', 'user-agent': clientUserAgent('hostile-0000') });
      s.on('response', (h) => resolve(String(h[VOUCH_TRAILER] ?? '')));
      s.on('error', reject);
      s.end();
    });
    expect(stolen).not.toBe('');
    // A hostile replica of "echo" forwards every call to the victim with that voucher.
    const rogue = new grpc.Server();
    rogue.addService(EchoService.service, echoImplementation('rogue'));
    const roguePort = await new Promise<number>((res, rej) => rogue.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    cleanups.push(() => rogue.forceShutdown());
    const rogueReplica = await attach(rogue, { balancer: balancer.controlAddress, group: 'echo', address: `127.0.0.1:${roguePort}` });
    cleanups.push(() => rogueReplica.detach());
    answerWithForwards(rogue, () => ({ [FORWARD_TRAILER]: victim.address, [RETRY_PUSHBACK_TRAILER]: '0', [VOUCH_TRAILER]: stolen }));
    const honest = await startReplica(balancer, 'honest');
    cleanups.push(() => stopReplica(honest));
    const refused: string[] = [];
    const listener = { refused: (_from: string, to: string, why: string) => void refused.push(`${to}: ${why}`) };
    clientEvents.add(listener);
    cleanups.push(() => void clientEvents.delete(listener));
    const stub = echoClient(balancer.address, clientOptions());
    cleanups.push(() => stub.close());
    // Round-robin binds the first call to the rogue; its forward to the victim is not followed.
    expect((await unary(stub, { text: 'hello' })).servedBy).toBe('honest');
    expect(refused).toHaveLength(1);
    expect(refused[0]).toContain('group');
  });
});

describe('only the balancer can mark a call as proxied', () => {
  it('a direct rebind client sending rebind-proxied to a draining replica is still forwarded', async () => {
    const balancer = await balancerWith({});
    const r = await startReplica(balancer, 'A');
    cleanups.push(() => stopReplica(r));
    r.replica.forwards.draining = true;
    const direct = echoClient(r.address, { 'grpc.secondary_user_agent': clientUserAgent('escaping-client') });
    cleanups.push(() => direct.close());
    const metadata = new grpc.Metadata();
    metadata.set(PROXIED_HEADER, '1');
    const err = (await unary(direct, { text: 'escape' }, metadata).catch((e) => e)) as grpc.ServiceError;
    expect(err.code).toBe(FORWARD_STATUS);
    expect(err.metadata.get(FORWARD_TRAILER)).toEqual(['balancer']);
    expect(r.replica.refusals.get('bad_proxied_marker')).toBe(1);
  });

  it("the balancer's own proxied calls are served by a draining replica (never forwarded)", async () => {
    const balancer = await balancerWith({}, [{ name: 'echo', granularity: 'per-request', reportIntervalMs: 200 }]);
    const r = await startReplica(balancer, 'A');
    cleanups.push(() => stopReplica(r));
    await waitFor(() => [...balancer.registry.groups.get('echo')!.members.values()].every((m) => m.reported), 5000, 10, 'first report');
    r.replica.forwards.draining = true;
    const plain = echoClient(balancer.address);
    cleanups.push(() => plain.close());
    expect((await unary(plain, { text: 'proxied' })).servedBy).toBe('A');
  });
});

/**
 * Security: the control plane is authenticated (token, mTLS); clients follow
 * forwards only to the balancer or to members it vouched for; TLS on the
 * data path.
 */
import * as grpc from '@grpc/grpc-js';
import { writeFileSync } from 'node:fs';
import { createServer, type Server as NetServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { attach, Balancer, clientEvents, clientOptions } from '../../src/index';
import { tokenMetadata } from '../../src/balancer/auth';
import { Voucher } from '../../src/balancer/vouch';
import { controlProto } from '../../src/common/proto';
import { BINDING_TRAILER, FORWARD_STATUS, FORWARD_TRAILER, RETRY_PUSHBACK_TRAILER, VOUCH_TRAILER } from '../../src/common/wire';
import { balancerKey, checkVoucher } from '../../src/interceptors/vouch-check';
import type { AdminClient } from '../../src/generated/rebind/v1/Admin';
import type { ControlClient } from '../../src/generated/rebind/v1/Control';
import { echoImplementation, EchoService, startEchoServer, type EchoClient } from '../support/echo';
import { echoClient, startBalancer, unary, waitFor } from '../support/cluster';
import { makePki } from '../support/tls';
import { answerWithForwards } from '../support/rogue';

const TOKEN = 'correct-horse-battery-staple-42';
const ADMIN_TOKEN = 'admin-horse-battery-staple-42';
const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups.length = 0;
});

async function balancerWith(extra: Record<string, unknown>, group: Record<string, unknown> = {}): Promise<Balancer> {
  const b = await startBalancer([{ name: 'echo', reportIntervalMs: 200, ...group }], extra);
  cleanups.push(() => b.stop());
  return b;
}

describe('control-plane token', () => {
  it('refuses an attach, a load report and an admin call without the token of their role, with UNAUTHENTICATED', async () => {
    const balancer = await balancerWith({ security: { replicaToken: TOKEN, adminToken: ADMIN_TOKEN } });
    const { server, address } = await startEchoServer('A');
    cleanups.push(() => server.forceShutdown());
    // attach() without the token: refused, and attach() says so.
    const err = (await attach(server, { balancer: balancer.controlAddress, group: 'echo', address }).catch((e) => e)) as Error;
    expect(err.message).toContain('missing replica token');
    const proto = controlProto();
    const control = new proto.rebind.v1.Control(balancer.controlAddress, grpc.credentials.createInsecure()) as unknown as ControlClient;
    cleanups.push(() => control.close());
    // A report (or anything) on a control stream with a wrong token.
    const status = await new Promise<grpc.StatusObject>((resolve) => {
      const call = control.attach(tokenMetadata('a-wrong-token-of-enough-length'));
      call.on('status', resolve);
      call.on('error', () => undefined);
      call.on('data', () => undefined);
      call.write({ report: { seq: 1, intervalMs: 200, callsPerS: 1e6 } });
    });
    expect(status.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(status.details).toContain('invalid replica token');
    // An admin call without the token.
    const admin = new proto.rebind.v1.Admin(balancer.controlAddress, grpc.credentials.createInsecure()) as unknown as AdminClient;
    cleanups.push(() => admin.close());
    const adminErr = await new Promise<grpc.ServiceError | null>((resolve) => admin.setStrategy({ group: 'echo', strategy: 'random' }, (e) => resolve(e)));
    expect(adminErr?.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(balancer.registry.groups.get('echo')!.strategyName).toBe('minimum_dispersion');
    expect(balancer.registry.groups.get('echo')!.members.size).toBe(0);
    expect((balancer.refusals.get('missing_token') ?? 0) + (balancer.refusals.get('bad_token') ?? 0)).toBe(3);
    // With the token, all three work.
    const replica = await attach(server, { balancer: balancer.controlAddress, group: 'echo', address, token: TOKEN });
    cleanups.push(() => replica.detach());
    expect(balancer.registry.groups.get('echo')!.members.size).toBe(1);
    const ok = await new Promise<grpc.ServiceError | null>((resolve) => admin.setStrategy({ group: 'echo', strategy: 'random' }, tokenMetadata(ADMIN_TOKEN), (e) => resolve(e)));
    expect(ok).toBeNull();
  });

  it('reads the replica token from security.replicaTokenFile', async () => {
    const pki = makePki();
    const file = `${pki.dir}/token`;
    writeFileSync(file, `${TOKEN}\n`);
    const balancer = await balancerWith({ security: { replicaTokenFile: file } });
    const { server, address } = await startEchoServer('A');
    cleanups.push(() => server.forceShutdown());
    const replica = await attach(server, { balancer: balancer.controlAddress, group: 'echo', address, token: TOKEN });
    cleanups.push(() => replica.detach());
    expect(replica.state).toBe('attached');
  });
});

describe('mTLS on the control port', () => {
  it('attaches a replica with a client certificate and refuses a connection without one', async () => {
    // The replica's certificate names the address it attaches as (see hardening-security.test.ts).
    const pki = makePki({ clientSan: 'IP:127.0.0.1' });
    const balancer = await balancerWith({
      security: { replicaToken: TOKEN, adminToken: ADMIN_TOKEN, controlTls: { certFile: pki.serverCertFile, keyFile: pki.serverKeyFile, caFile: pki.caFile, requireClientCert: true } },
    });
    const { server, address } = await startEchoServer('A');
    cleanups.push(() => server.forceShutdown());
    const replica = await attach(server, {
      balancer: balancer.controlAddress,
      group: 'echo',
      address,
      token: TOKEN,
      credentials: grpc.credentials.createSsl(pki.ca, pki.clientKey, pki.clientCert),
    });
    cleanups.push(() => replica.detach());
    expect(balancer.registry.groups.get('echo')!.members.size).toBe(1);
    const proto = controlProto();
    const noCert = new proto.rebind.v1.Admin(balancer.controlAddress, grpc.credentials.createSsl(pki.ca)) as unknown as AdminClient;
    cleanups.push(() => noCert.close());
    const err = await new Promise<grpc.ServiceError | null>((resolve) =>
      noCert.listGroups({}, tokenMetadata(ADMIN_TOKEN), { deadline: Date.now() + 3000 }, (e) => resolve(e)),
    );
    expect(err).not.toBeNull();
    expect([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED]).toContain(err!.code);
  });
});

describe('an application cannot fake a forward', () => {
  it("an application interceptor's ABORTED with rebind-forward reaches the client as a plain ABORTED, not retried", async () => {
    const balancer = await balancerWith({}, { granularity: 'per-session', strategy: 'round_robin' });
    const server = new grpc.Server({
      interceptors: [
        (_m, call) =>
          new grpc.ServerInterceptingCall(call, {
            start: (next) =>
              next({
                onReceiveMetadata: () => {
                  const t = new grpc.Metadata();
                  t.set(FORWARD_TRAILER, '127.0.0.1:9');
                  t.set(RETRY_PUSHBACK_TRAILER, '0');
                  call.sendStatus({ code: FORWARD_STATUS, details: 'the application said so', metadata: t });
                },
              }),
          }),
      ],
    });
    server.addService(EchoService.service, echoImplementation('app'));
    const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    cleanups.push(() => server.forceShutdown());
    const replica = await attach(server, { balancer: balancer.controlAddress, group: 'echo', address: `127.0.0.1:${port}` });
    cleanups.push(() => replica.detach());
    const stub = echoClient(balancer.address, clientOptions());
    cleanups.push(() => stub.close());
    const err = (await unary(stub, { text: 'x' }).catch((e) => e)) as grpc.ServiceError;
    expect(err.code).toBe(grpc.status.ABORTED);
    expect(err.details).toBe('the application said so');
    expect(err.metadata.get(FORWARD_TRAILER)).toEqual([]);
    expect(err.metadata.get(RETRY_PUSHBACK_TRAILER)).toEqual(['-1']);
  });
});

describe('vouching', () => {
  it('a voucher is checked against the pinned key, the target and its expiry', () => {
    const voucher = new Voucher();
    const key = balancerKey(voucher.publicKey);
    const v = voucher.vouch('g', '10.0.0.1:80', 120_000, 1_000);
    expect(checkVoucher(key, 'g', '10.0.0.1:80', v, 2_000)).toBe(true);
    expect(checkVoucher(key, 'g', '10.0.0.2:80', v, 2_000)).toContain('signature');
    expect(checkVoucher(key, 'g', '10.0.0.1:80', v, 1_000 + 10 * 60_000)).toBe('voucher expired');
    expect(checkVoucher(key, 'g', '10.0.0.1:80', undefined)).toBe('no voucher');
    expect(checkVoucher(key, 'g', '10.0.0.1:80', 'garbage')).toBe('malformed voucher');
    expect(checkVoucher(balancerKey(new Voucher().publicKey), 'g', '10.0.0.1:80', v, 2_000)).toContain('signature');
    expect(checkVoucher(null, 'g', '10.0.0.1:80', v)).toBe('no balancer key pinned yet');
    expect(checkVoucher(key, null, '10.0.0.1:80', v)).toBe('no group pinned yet');
    expect(balancerKey('not a key')).toBeNull();
  });

  it("a forged forward never sends a client to an address the balancer did not vouch for", async () => {
    // The attacker's address: it counts connections.
    let connections = 0;
    const attacker: NetServer = createServer((s) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((r) => attacker.listen(0, '127.0.0.1', () => r()));
    cleanups.push(() => new Promise((r) => attacker.close(() => r(undefined))));
    const attackerAddress = `127.0.0.1:${(attacker.address() as { port: number }).port}`;
    const balancer = await balancerWith({}, { granularity: 'per-session', strategy: 'round_robin' });
    // A compromised replica: it answers every call with a forward to the attacker, unvouched.
    // (An application's own interceptor sits behind rebind's, which strips forwards it makes;
    // so the rogue is put in front, at the network edge, as a compromised process would be.)
    const rogue = new grpc.Server();
    rogue.addService(EchoService.service, echoImplementation('rogue'));
    const roguePort = await new Promise<number>((res, rej) => rogue.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    cleanups.push(() => rogue.forceShutdown());
    const rogueReplica = await attach(rogue, { balancer: balancer.controlAddress, group: 'echo', address: `127.0.0.1:${roguePort}` });
    cleanups.push(() => rogueReplica.detach());
    answerWithForwards(rogue, () => ({
      [FORWARD_TRAILER]: attackerAddress,
      [RETRY_PUSHBACK_TRAILER]: '0',
      [VOUCH_TRAILER]: `${Date.now() + 60_000}.${Buffer.from('echo').toString('base64url')}.forged-signature`,
    }));
    const honest = await startEchoServer('honest');
    cleanups.push(() => honest.server.forceShutdown());
    const honestReplica = await attach(honest.server, { balancer: balancer.controlAddress, group: 'echo', address: honest.address });
    cleanups.push(() => honestReplica.detach());
    const refused: string[] = [];
    const listener = { refused: (_from: string, to: string, why: string) => void refused.push(`${to}: ${why}`) };
    clientEvents.add(listener);
    cleanups.push(() => void clientEvents.delete(listener));
    const stub = echoClient(balancer.address, clientOptions());
    cleanups.push(() => stub.close());
    // Round-robin binds the first call to the rogue, which forwards to the attacker;
    // the client goes back to the balancer instead and is bound to the honest replica.
    const reply = await unary(stub, { text: 'hello' });
    expect(reply.servedBy).toBe('honest');
    expect(refused).toEqual([`${attackerAddress}: voucher signature does not match the balancer key`]);
    await new Promise((r) => setTimeout(r, 200));
    expect(connections).toBe(0);
  });
});

describe('TLS on the data path', () => {
  it('forwards and proxies over TLS: clients, balancer and replicas', async () => {
    const pki = makePki();
    const tls = { certFile: pki.serverCertFile, keyFile: pki.serverKeyFile };
    const balancer = await balancerWith({ security: { dataTls: tls, upstreamCaFile: pki.caFile } }, { granularity: 'per-session', strategy: 'round_robin' });
    const server = new grpc.Server();
    server.addService(EchoService.service, echoImplementation('tls-replica'));
    const port = await new Promise<number>((res, rej) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createSsl(null, [{ cert_chain: pki.serverCert, private_key: pki.serverKey }]), (e, p) => (e ? rej(e) : res(p))),
    );
    cleanups.push(() => server.forceShutdown());
    const replica = await attach(server, { balancer: balancer.controlAddress, group: 'echo', address: `127.0.0.1:${port}` });
    cleanups.push(() => replica.detach());
    const creds = grpc.credentials.createSsl(pki.ca);
    // Rebind client: forwarded, then straight to the replica over TLS.
    const rebindStub = new EchoService(balancer.address, creds, clientOptions()) as unknown as EchoClient;
    cleanups.push(() => rebindStub.close());
    expect((await unary(rebindStub, { text: 'a' })).servedBy).toBe('tls-replica');
    expect((await unary(rebindStub, { text: 'b' })).servedBy).toBe('tls-replica');
    expect(balancer.registry.groups.get('echo')!.counters.forwards).toBe(1);
    // Plain client: proxied, TLS on both legs.
    const plain = new EchoService(balancer.address, creds) as unknown as EchoClient;
    cleanups.push(() => plain.close());
    expect((await unary(plain, { text: 'c' })).servedBy).toBe('tls-replica');
    expect(balancer.registry.groups.get('echo')!.counters.proxiedCalls).toBe(1);
    // A plaintext client cannot talk to the TLS data port.
    const cleartext = echoClient(balancer.address);
    cleanups.push(() => cleartext.close());
    const err = (await unary(cleartext, { text: 'd' }, new grpc.Metadata(), { deadline: Date.now() + 2000 }).catch((e) => e)) as grpc.ServiceError;
    expect([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED, grpc.status.INTERNAL]).toContain(err.code);
    await waitFor(() => true);
  });
});

describe('an application cannot send binding updates', () => {
  it("its own rebind-binding and rebind-vouch trailers on an OK response never reach the client", async () => {
    const balancer = await balancerWith({}, { granularity: 'per-session', strategy: 'round_robin' });
    const impl = echoImplementation('app');
    const server = new grpc.Server();
    server.addService(EchoService.service, {
      ...impl,
      Unary: (call: grpc.ServerUnaryCall<{ text: string }, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        const t = new grpc.Metadata();
        t.set(BINDING_TRAILER, '127.0.0.1:9=1000');
        t.set(VOUCH_TRAILER, `${Date.now() + 60_000}.ZWNobw.forged`);
        t.set('x-app', 'kept');
        callback(null, { text: call.request.text, servedBy: 'app', index: 0 }, t);
      },
    } as grpc.UntypedServiceImplementation);
    const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    cleanups.push(() => server.forceShutdown());
    const replica = await attach(server, { balancer: balancer.controlAddress, group: 'echo', address: `127.0.0.1:${port}` });
    cleanups.push(() => replica.detach());
    // Straight to the replica, reading its trailers.
    const direct = echoClient(`127.0.0.1:${port}`);
    cleanups.push(() => direct.close());
    const trailers = await new Promise<grpc.Metadata>((resolve, reject) => {
      const call = direct.unary({ text: 'x' }, (err) => err && reject(err));
      call.on('status', (s: grpc.StatusObject) => resolve(s.metadata));
    });
    expect(trailers.get('x-app')).toEqual(['kept']);
    expect(trailers.get(BINDING_TRAILER)).toEqual([]);
    expect(trailers.get(VOUCH_TRAILER)).toEqual([]);
  });
});

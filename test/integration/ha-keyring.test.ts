/**
 * The vouching key ring shared through etcd (and the live-balancer count binds use): every balancer of an HA set
 * signs with the same ring from its start, a rotation written by one reaches
 * all (the old keys stay in the ring, the new one endorsed by the old), and a
 * ring in etcd that does not parse is ignored and counted while the balancers
 * keep signing with the ring they have.
 */
import { Etcd3 } from 'etcd3';
import { describe, expect, it } from 'vitest';
import type { Balancer } from '../../src/index';
import { parseRing } from '../../src/balancer/keyring';
import { waitFor } from '../support/cluster';
import { freshPrefix, startHaBalancer, useEtcd } from '../support/ha-coord';

const GROUPS = [{ name: 'echo', granularity: 'on-demand', strategy: 'minimum_dispersion', reportIntervalMs: 1000 }];

const { etcd: etcdProcess, cleanups } = useEtcd();

async function three(prefix: string): Promise<Balancer[]> {
  const bs: Balancer[] = [];
  for (let i = 0; i < 3; i++) {
    const b = await startHaBalancer(etcdProcess().endpoint, prefix, GROUPS, { balancerId: `k${i}` });
    cleanups.push(() => b.stop());
    bs.push(b);
  }
  return bs;
}

describe('HA: the vouching key ring in etcd', () => {
  it('all balancers sign with the ring the first one wrote; a rotation by one reaches all, old keys kept', async () => {
    const bs = await three(freshPrefix());
    // Each balancer made its own key at construction; after start they all sign with the first one's.
    const first = bs[0]!.voucher.publicKey;
    expect(bs.map((b) => b.voucher.publicKey)).toEqual([first, first, first]);
    expect(bs[1]!.voucher.publicKeys).toEqual([first]);

    expect(await bs[1]!.keyRing!.rotateIfDue(true)).toBe(true);
    const signer = bs[1]!.voucher.publicKey;
    expect(signer).not.toBe(first);
    await waitFor(() => bs.every((b) => b.voucher.publicKey === signer), 5000, 20, 'every balancer signing with the rotated key');
    for (const b of bs) expect(b.voucher.publicKeys).toEqual([first, signer]);
    // The rotated key is endorsed by the first: the chain every advisory carries names it.
    expect(bs[2]!.voucher.chain).toContain(signer);

    // Binds count pending binds once per live balancer (herding): every balancer sees the three.
    await waitFor(() => bs.every((b) => b.registry.peerBalancers() === 3), 5000, 20, 'three live balancers seen by each');

    // Not due (the default period is a day): nothing is written.
    expect(await bs[0]!.keyRing!.rotateIfDue()).toBe(false);
    expect(bs[0]!.voucher.publicKey).toBe(signer);
  }, 60_000);

  it('a malformed ring in etcd is ignored and counted; the balancers keep signing with their ring', async () => {
    const prefix = freshPrefix();
    const bs = await three(prefix);
    const signer = bs[0]!.voucher.publicKey;
    const client = new Etcd3({ hosts: etcdProcess().endpoint });
    cleanups.push(() => client.close());
    const ring = JSON.parse((await client.get(`${prefix}docs/keyring`).string())!) as { keys: { privateKeyPem: string }[] };
    expect(typeof parseRing(ring)).toBe('object');
    // A ring whose key does not match its private key (tampered), then plain garbage.
    ring.keys[0]!.privateKeyPem = ring.keys[0]!.privateKeyPem.replace(/[A-Za-z]{8}\n/, 'AAAAAAAA\n');
    await client.put(`${prefix}docs/keyring`).value(JSON.stringify(ring));
    await client.put(`${prefix}docs/keyring`).value('{"keys": 7}');
    await waitFor(() => bs.every((b) => (b.refusals.get('ha_bad_keyring') ?? 0) >= 1), 5000, 20, 'every balancer counting the bad ring');
    expect(bs.map((b) => b.voucher.publicKey)).toEqual([signer, signer, signer]);
    expect(bs[0]!.voucher.vouch('echo', '127.0.0.1:1', 5000).split('.')).toHaveLength(3);
  }, 60_000);
});

/**
 * The vouching key ring (issue 14): rotation, endorsements, the JSON form
 * and its validation; the client's pinned key set and key chains.
 */
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { keyId, MAX_RING_KEYS, MAX_RING_JSON_CHARS, newRing, parseRing, ringChain, ringChainText, rotateRing, rotationDue, serializeRing, type RingState } from '../../src/balancer/keyring';
import { Voucher } from '../../src/balancer/vouch';
import { endorsePayload, formatKeyChain, MAX_KEY_CHAIN_CHARS, parseKeyChain, vouchPayload } from '../../src/common/wire';
import { balancerKey, checkVoucher, endorsedKeys, MAX_PINNED_KEYS, PinnedKeys, UNKNOWN_KEY } from '../../src/interceptors/vouch-check';

const T = '10.0.0.1:80';

function rotated(times: number, start = newRing(1_000)): RingState {
  let ring = start;
  for (let i = 0; i < times; i++) ring = rotateRing(ring, 2_000 + i);
  return ring;
}

/** A fresh Ed25519 key pair, public key as clients see it. */
function keyPair(): { privateKey: KeyObject; publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { privateKey, publicKey: publicKey.export({ format: 'der', type: 'spki' }).toString('base64url') };
}

describe('key ring', () => {
  it('starts with one key, no endorsement and an empty chain', () => {
    const ring = newRing(1_000);
    expect(ring.keys).toHaveLength(1);
    expect(ring.keys[0]).toMatchObject({ createdAtMs: 1_000, endorsement: '' });
    expect(ring.keys[0]!.id).toBe(keyId(ring.keys[0]!.publicKey));
    expect(ringChainText(ring)).toBe('');
  });

  it('rotates: each new key endorsed by the one before, at most MAX_RING_KEYS, the oldest dropped', () => {
    const start = newRing(1_000);
    const ring = rotated(MAX_RING_KEYS + 1, start);
    expect(ring.keys).toHaveLength(MAX_RING_KEYS);
    expect(ring.keys.map((k) => k.publicKey)).not.toContain(start.keys[0]!.publicKey);
    for (let i = 1; i < ring.keys.length; i++) {
      expect(endorsedKeys(new Map([[ring.keys[i - 1]!.publicKey, balancerKey(ring.keys[i - 1]!.publicKey)!]]), formatKeyChain([{ publicKey: ring.keys[i]!.publicKey, signature: ring.keys[i]!.endorsement }]))).toEqual([ring.keys[i]!.publicKey]);
    }
    // The oldest keeps its endorsement (by a key gone from the ring): a client that pinned that key can still use it.
    expect(ringChain(ring)).toHaveLength(MAX_RING_KEYS);
    expect(parseKeyChain(ringChainText(ring))).toHaveLength(MAX_RING_KEYS);
    expect(ringChainText(ring).length).toBeLessThanOrEqual(MAX_KEY_CHAIN_CHARS);
  });

  it('is due for rotation when its newest key is rotationMs old', () => {
    const ring = newRing(1_000);
    expect(rotationDue(ring, 500, 1_499)).toBe(false);
    expect(rotationDue(ring, 500, 1_500)).toBe(true);
  });

  it('round-trips through its JSON form', () => {
    const ring = rotated(2);
    expect(parseRing(serializeRing(ring))).toEqual(ring);
    expect(parseRing(JSON.parse(serializeRing(ring)))).toEqual(ring);
  });

  it('refuses a ring that is not one, saying why', () => {
    const ring = rotated(2);
    const json = JSON.parse(serializeRing(ring)) as { keys: Record<string, unknown>[] };
    const variant = (edit: (keys: Record<string, unknown>[]) => void): string => {
      const copy = structuredClone(json);
      edit(copy.keys);
      return JSON.stringify(copy);
    };
    expect(parseRing('{')).toMatch(/not JSON/);
    expect(parseRing('x'.repeat(MAX_RING_JSON_CHARS + 1))).toMatch(/characters long/);
    expect(parseRing('{"keys": []}')).toMatch(/has 0 keys/);
    expect(parseRing(JSON.stringify({ keys: rotated(MAX_RING_KEYS).keys.concat(rotated(0).keys) }))).toMatch(/has 5 keys/);
    expect(parseRing('[]')).toMatch(/"keys" array/);
    expect(parseRing(variant((k) => (k[1]!['publicKey'] = k[0]!['publicKey'])))).toBe("key ring key 1: publicKey is not the private key's public key");
    expect(parseRing(variant((k) => (k[1]!['id'] = 'other')))).toBe("key ring key 1: id is not the key's fingerprint");
    expect(parseRing(variant((k) => (k[2]!['endorsement'] = k[1]!['endorsement'])))).toBe('key ring key 2: not endorsed by key 1');
    expect(parseRing(variant((k) => (k[1]!['endorsement'] = '')))).toBe('key ring key 1: not endorsed by key 0');
    expect(parseRing(variant((k) => (k[1]!['endorsement'] = 'short')))).toMatch(/key 1: endorsement must be/);
    expect(parseRing(variant((k) => (k[0]!['createdAtMs'] = -1)))).toMatch(/key 0: createdAtMs/);
    expect(parseRing(variant((k) => (k[0]!['privateKeyPem'] = 'nope')))).toBe('key ring key 0: privateKeyPem is not a private key');
    expect(parseRing(variant((k) => k.push(structuredClone(k[0]!))))).toBe('key ring key 3 is in the ring twice');
    // An ECDSA key is not a vouching key.
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    expect(parseRing(variant((k) => (k[0]!['privateKeyPem'] = ec)))).toBe('key ring key 0: the key is ec, not ed25519');
    // A ring whose keys are each well formed but are not a chain: the second key is not endorsed by the first.
    const spliced = { keys: [rotated(0).keys[0], rotated(1).keys[1]] };
    expect(parseRing(JSON.stringify(spliced))).toBe('key ring key 1: not endorsed by key 0');
  });
});

describe('Voucher over a ring', () => {
  it('signs with the newest key; rotate() and load() change the signer, and every ring key is published', () => {
    const voucher = new Voucher();
    const first = voucher.publicKey;
    const before = voucher.vouch('g', T, 60_000, 1_000);
    expect(voucher.chain).toBe('');
    expect(voucher.publicKeys).toEqual([first]);
    voucher.rotate(5_000);
    expect(voucher.publicKeys).toEqual([first, voucher.publicKey]);
    expect(voucher.publicKeysTrailer).toBe(`${first},${voucher.publicKey}`);
    expect(voucher.chain).toBe(ringChainText(voucher.state));
    // A cached voucher of the old key is not handed out again: the new one is the newest key's.
    const after = voucher.vouch('g', T, 60_000, 1_000);
    expect(after).not.toBe(before);
    expect(checkVoucher(balancerKey(voucher.publicKey), 'g', T, after, 2_000)).toBe(true);
    expect(checkVoucher(balancerKey(first), 'g', T, after, 2_000)).toBe(UNKNOWN_KEY);
    // The old voucher stays good at clients that pinned the old key.
    expect(checkVoucher(balancerKey(first), 'g', T, before, 2_000)).toBe(true);
  });

  it("a second balancer that loads the same ring signs vouchers a client pinned through the first accepts", () => {
    const first = new Voucher();
    first.rotate();
    const second = new Voucher();
    expect(checkVoucher(first.publicKeys.map((k) => balancerKey(k)!), 'g', T, second.vouch('g', T, 60_000))).toBe(UNKNOWN_KEY);
    second.load(parseRing(serializeRing(first.state)) as RingState);
    expect(second.publicKeys).toEqual(first.publicKeys);
    const pinned = new PinnedKeys();
    for (const k of first.publicKeysTrailer.split(',')) pinned.pin(k);
    expect(pinned.check('g', T, second.vouch('g', T, 60_000))).toBe(true);
    // A rotation made by the second and loaded by the first: a client pinned before it follows through the chain.
    first.load(second.rotate());
    expect(pinned.check('g', T, first.vouch('g', T, 60_000))).toBe(UNKNOWN_KEY);
    expect(pinned.check('g', T, first.vouch('g', T, 60_000), second.chain)).toBe(true);
  });
});

describe("the client's pinned keys", () => {
  it('accepts a voucher under any pinned key', () => {
    const a = new Voucher();
    const b = new Voucher();
    const pinned = new PinnedKeys();
    pinned.pin(a.publicKey);
    pinned.pin(b.publicKey);
    expect(pinned.check('g', T, a.vouch('g', T, 60_000))).toBe(true);
    expect(pinned.check('g', T, b.vouch('g', T, 60_000))).toBe(true);
    expect(pinned.check('g', T, new Voucher().vouch('g', T, 60_000))).toBe(UNKNOWN_KEY);
    expect(pinned.check('other', T, a.vouch('g', T, 60_000))).toMatch(/not this client's group/);
  });

  it('follows one and two rotations through the key chain, and pins the keys it reached', () => {
    for (const rotations of [1, 2, MAX_RING_KEYS - 1, MAX_RING_KEYS]) {
      const voucher = new Voucher();
      const pinned = new PinnedKeys();
      pinned.pin(voucher.publicKey);
      for (let i = 0; i < rotations; i++) voucher.rotate();
      const v = voucher.vouch('g', T, 60_000);
      expect(pinned.check('g', T, v)).toBe(UNKNOWN_KEY);
      // Entries in any order: the chain is followed whatever order a replica sends it in.
      const chain = formatKeyChain([...ringChain(voucher.state)].reverse());
      expect(pinned.check('g', T, v, chain), `${rotations} rotations`).toBe(true);
      expect(pinned.has(voucher.publicKey)).toBe(true);
      expect(pinned.size).toBe(rotations + 1);
    }
  });

  it('a key chain that does not reach a pinned key extends nothing', () => {
    const voucher = new Voucher();
    const pinned = new PinnedKeys();
    pinned.pin(voucher.publicKey);
    for (let i = 0; i < MAX_RING_KEYS + 1; i++) voucher.rotate();
    // Rotated past the ring: the chain's first endorsement is by a key this client never pinned.
    expect(pinned.check('g', T, voucher.vouch('g', T, 60_000), voucher.chain)).toBe(`${UNKNOWN_KEY} (nor any key its key chain endorses)`);
    expect(pinned.size).toBe(1);
  });

  it('refuses a forged chain: a key endorsed by a key the client never pinned, or an endorsement that does not verify', () => {
    const balancer = new Voucher();
    const pinned = new PinnedKeys();
    pinned.pin(balancer.publicKey);
    const attacker = keyPair();
    const accomplice = keyPair();
    const forgedVoucher = (() => {
      const notAfter = Date.now() + 60_000;
      const signature = sign(null, vouchPayload('g', T, notAfter), attacker.privateKey).toString('base64url');
      return `${notAfter}.${Buffer.from('g').toString('base64url')}.${signature}`;
    })();
    const byAccomplice = formatKeyChain([{ publicKey: attacker.publicKey, signature: sign(null, endorsePayload(attacker.publicKey), accomplice.privateKey).toString('base64url') }]);
    expect(pinned.check('g', T, forgedVoucher, byAccomplice)).toMatch(new RegExp(`^${UNKNOWN_KEY}`));
    // An endorsement lifted from the real chain, put on the attacker's key.
    balancer.rotate();
    const lifted = formatKeyChain([{ publicKey: attacker.publicKey, signature: ringChain(balancer.state)[0]!.signature }]);
    expect(pinned.check('g', T, forgedVoucher, lifted)).toMatch(new RegExp(`^${UNKNOWN_KEY}`));
    expect(pinned.has(attacker.publicKey)).toBe(false);
    expect(pinned.size).toBe(1);
    // A chain that is not one is named as such.
    expect(pinned.check('g', T, forgedVoucher, 'garbage')).toMatch(/^malformed key chain/);
  });

  it('holds at most MAX_PINNED_KEYS keys, the least recently pinned dropped first', () => {
    const pinned = new PinnedKeys();
    const keys = Array.from({ length: MAX_PINNED_KEYS + 2 }, () => new Voucher().publicKey);
    for (const k of keys) expect(pinned.pin(k)).toBe(true);
    expect(pinned.size).toBe(MAX_PINNED_KEYS);
    expect(pinned.list()).toEqual(keys.slice(2));
    // Pinning a key again makes it the most recently pinned.
    pinned.pin(keys[2]!);
    pinned.pin(new Voucher().publicKey);
    expect(pinned.has(keys[2]!)).toBe(true);
    expect(pinned.has(keys[3]!)).toBe(false);
    expect(pinned.pin('not a key')).toBe(false);
  });
});

describe('key chain wire form', () => {
  it('parses strictly and bounds its size', () => {
    const ring = rotated(2);
    expect(parseKeyChain('')).toEqual([]);
    expect(parseKeyChain(ringChainText(ring))).toEqual(ringChain(ring));
    const entry = ringChainText(rotated(1));
    expect(parseKeyChain(Array(5).fill('a.b').join(','))).toMatch(/5 entries/);
    expect(parseKeyChain(`${entry},${entry}`)).toMatch(/names a key twice/);
    expect(parseKeyChain('a.b')).toMatch(/the key is not 59 characters/);
    expect(parseKeyChain(`${entry.split('.')[0]}.abc`)).toMatch(/the signature is not 86 characters/);
    expect(parseKeyChain(`${entry}.x`)).toMatch(/not of the form/);
    expect(parseKeyChain('x'.repeat(MAX_KEY_CHAIN_CHARS + 1))).toMatch(/characters long/);
  });
});

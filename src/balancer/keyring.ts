/**
 * The vouching key ring: the Ed25519 keys a balancer signs vouchers with,
 * oldest first, at most {@link MAX_RING_KEYS}. The newest signs; every key
 * but the oldest carries an endorsement, the signature of the key before it
 * over {@link endorsePayload}(its public key). A client that pinned any key
 * of the ring can therefore reach the newest through the endorsements (the
 * key chain a replica sends beside each voucher), so rotating the key
 * strands no client bound before the rotation. Keys older than the ring's
 * oldest are forgotten: a client that pinned only those goes back to the
 * balancer once and pins the ring anew.
 *
 * Storage-agnostic: a ring is plain data ({@link RingState}) with a JSON form
 * ({@link serializeRing}, {@link parseRing}) that several balancers can share
 * (with `ha`, an etcd document). That JSON holds the private keys: whatever
 * stores it must be as protected as the keys (etcd with TLS and auth).
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { endorsePayload, formatKeyChain, MAX_KEY_CHAIN_ENTRIES, type KeyChainEntry } from '../common/wire';

/** Keys a ring holds at most; a rotation beyond it drops the oldest. */
export const MAX_RING_KEYS = 4;
if (MAX_RING_KEYS > MAX_KEY_CHAIN_ENTRIES) throw new Error('keyring: MAX_RING_KEYS exceeds the key chain a replica accepts');
/** Longest ring JSON {@link parseRing} reads, characters (4 keys take about 1.5 KiB). */
export const MAX_RING_JSON_CHARS = 64 * 1024;
/** Longest private key PEM accepted (an Ed25519 PKCS#8 PEM is 119 characters). */
const MAX_PEM_CHARS = 1024;

/** One key of a ring. */
export interface RingKey {
  /** The key's fingerprint: base64url of the first 9 bytes of SHA-256 over its public key's SPKI DER. */
  id: string;
  /** When the key was made, Unix ms. */
  createdAtMs: number;
  /** The private key, PKCS#8 PEM. */
  privateKeyPem: string;
  /** The public key, SPKI DER, base64url (what clients pin). */
  publicKey: string;
  /** The previous key's signature over endorsePayload(publicKey), base64url; '' for a ring's first key. */
  endorsement: string;
}

/** A ring: keys oldest first, 1..MAX_RING_KEYS of them; the last one signs. */
export interface RingState {
  keys: RingKey[];
}

/** The id of a public key (see {@link RingKey.id}). */
export function keyId(publicKey: string): string {
  return createHash('sha256').update(Buffer.from(publicKey, 'base64url')).digest().subarray(0, 9).toString('base64url');
}

function publicKeyOf(privateKey: KeyObject): string {
  return createPublicKey(privateKey).export({ format: 'der', type: 'spki' }).toString('base64url');
}

/** A key from its private key, endorsed by `endorser` (none: the first key of a ring). */
function ringKey(privateKey: KeyObject, nowMs: number, endorser: KeyObject | null): RingKey {
  const publicKey = publicKeyOf(privateKey);
  return {
    id: keyId(publicKey),
    createdAtMs: nowMs,
    privateKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    publicKey,
    endorsement: endorser === null ? '' : sign(null, endorsePayload(publicKey), endorser).toString('base64url'),
  };
}

/**
 * A ring of one key: a fresh key, or the given private key (PKCS#8 PEM),
 * which must be an Ed25519 key.
 */
export function newRing(nowMs = Date.now(), privateKeyPem?: string): RingState {
  const privateKey = privateKeyPem === undefined ? generateKeyPairSync('ed25519').privateKey : createPrivateKey(privateKeyPem);
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new Error(`keyring: the private key is ${String(privateKey.asymmetricKeyType)}, not ed25519`);
  return { keys: [ringKey(privateKey, nowMs, null)] };
}

/**
 * The ring after one rotation: a new key, endorsed by the newest, signs from
 * now on; beyond {@link MAX_RING_KEYS} the oldest is dropped. `state` is not
 * changed.
 */
export function rotateRing(state: RingState, nowMs = Date.now()): RingState {
  const newest = state.keys[state.keys.length - 1];
  if (newest === undefined) return newRing(nowMs);
  const added = ringKey(generateKeyPairSync('ed25519').privateKey, nowMs, createPrivateKey(newest.privateKeyPem));
  return { keys: [...state.keys, added].slice(-MAX_RING_KEYS) };
}

/** Whether the ring's newest key is `rotationMs` old or more at `nowMs` (time for {@link rotateRing}). */
export function rotationDue(state: RingState, rotationMs: number, nowMs = Date.now()): boolean {
  const newest = state.keys[state.keys.length - 1];
  return newest === undefined || nowMs - newest.createdAtMs >= rotationMs;
}

/** The ring's key chain: the endorsements it holds, oldest first (the oldest key's too, if it still has one). */
export function ringChain(state: RingState): KeyChainEntry[] {
  return state.keys.filter((k) => k.endorsement !== '').map((k) => ({ publicKey: k.publicKey, signature: k.endorsement }));
}

/** The ring's key chain as trailer and advisory text (see parseKeyChain in common/wire.ts). */
export function ringChainText(state: RingState): string {
  return formatKeyChain(ringChain(state));
}

/** The JSON form of a ring (what a shared store holds). */
export function serializeRing(state: RingState): string {
  return JSON.stringify({ keys: state.keys.map((k) => ({ id: k.id, createdAtMs: k.createdAtMs, privateKeyPem: k.privateKeyPem, publicKey: k.publicKey, endorsement: k.endorsement })) });
}

const SIGNATURE = /^[A-Za-z0-9_-]{86}$/;

/**
 * Reads a ring from its JSON form (a string) or from the parsed value,
 * which may come from anywhere (a shared store another process writes):
 * 1..{@link MAX_RING_KEYS} keys, each an Ed25519 private key whose public key
 * and id match the ones stated, `createdAtMs` a non-negative integer, no key
 * twice, and every key but the oldest endorsed by the key before it (the
 * oldest's endorsement, by a key no longer in the ring, is kept unchecked:
 * a client that pinned that key checks it). Returns the ring, or why it is
 * not one.
 */
export function parseRing(input: unknown): RingState | string {
  let raw = input;
  if (typeof input === 'string') {
    if (input.length > MAX_RING_JSON_CHARS) return `key ring JSON is ${input.length} characters long (limit ${MAX_RING_JSON_CHARS})`;
    try {
      raw = JSON.parse(input) as unknown;
    } catch (err) {
      return `key ring is not JSON: ${(err as Error).message.slice(0, 200)}`;
    }
  }
  if (typeof raw !== 'object' || raw === null || !Array.isArray((raw as { keys?: unknown }).keys)) return 'key ring is not an object with a "keys" array';
  const list = (raw as { keys: unknown[] }).keys;
  if (list.length < 1 || list.length > MAX_RING_KEYS) return `key ring has ${list.length} keys (must be 1..${MAX_RING_KEYS})`;
  const keys: RingKey[] = [];
  const publicKeys: KeyObject[] = [];
  const seen = new Set<string>();
  for (const [i, entry] of list.entries()) {
    const where = `key ring key ${i}`;
    if (typeof entry !== 'object' || entry === null) return `${where} is not an object`;
    const { id, createdAtMs, privateKeyPem, publicKey, endorsement } = entry as Record<string, unknown>;
    if (typeof createdAtMs !== 'number' || !Number.isSafeInteger(createdAtMs) || createdAtMs < 0) return `${where}: createdAtMs must be a non-negative integer (Unix ms)`;
    if (typeof privateKeyPem !== 'string' || privateKeyPem.length > MAX_PEM_CHARS) return `${where}: privateKeyPem must be a PEM string of at most ${MAX_PEM_CHARS} characters`;
    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey(privateKeyPem);
    } catch {
      return `${where}: privateKeyPem is not a private key`;
    }
    if (privateKey.asymmetricKeyType !== 'ed25519') return `${where}: the key is ${String(privateKey.asymmetricKeyType)}, not ed25519`;
    const derived = publicKeyOf(privateKey);
    if (publicKey !== derived) return `${where}: publicKey is not the private key's public key`;
    if (id !== keyId(derived)) return `${where}: id is not the key's fingerprint`;
    if (seen.has(derived)) return `${where} is in the ring twice`;
    seen.add(derived);
    if (typeof endorsement !== 'string' || (endorsement !== '' && !SIGNATURE.test(endorsement))) return `${where}: endorsement must be '' or an Ed25519 signature in base64url`;
    const previous = publicKeys[i - 1];
    if (previous !== undefined) {
      let ok = false;
      try {
        ok = endorsement !== '' && verify(null, endorsePayload(derived), previous, Buffer.from(endorsement, 'base64url'));
      } catch {
        ok = false;
      }
      if (!ok) return `${where}: not endorsed by key ${i - 1}`;
    }
    publicKeys.push(createPublicKey(privateKey));
    keys.push({ id: keyId(derived), createdAtMs, privateKeyPem, publicKey: derived, endorsement });
  }
  return { keys };
}

/** The client's side of vouchers and key chains (see ../balancer/vouch.ts, ../balancer/keyring.ts). */
import { createPublicKey, KeyObject, verify } from 'node:crypto';
import { endorsePayload, MAX_KEY_CHAIN_ENTRIES, parseKeyChain, vouchPayload } from '../common/wire';

/**
 * Why {@link checkVoucher} refuses a voucher whose signature matches none of
 * the keys given: signed by a key the client has not pinned (the balancer
 * rotated its key since) or forged; the client cannot tell which.
 */
export const UNKNOWN_KEY = 'voucher signature does not match the balancer key';

const keys = new Map<string, KeyObject | null>();

/** Parses a balancer key (SPKI DER, base64url); null if it is not an Ed25519 key. */
export function balancerKey(encoded: string): KeyObject | null {
  if (keys.has(encoded)) return keys.get(encoded)!;
  let key: KeyObject | null = null;
  try {
    if (encoded.length <= 200) {
      const k = createPublicKey({ key: Buffer.from(encoded, 'base64url'), format: 'der', type: 'spki' });
      key = k.asymmetricKeyType === 'ed25519' ? k : null;
    }
  } catch {
    key = null;
  }
  if (keys.size > 100) keys.clear();
  keys.set(encoded, key);
  return key;
}

/** Vouchers already verified, per key (a voucher good for one key says nothing about another). */
const verified = new WeakMap<KeyObject, Map<string, number>>();

/** Splits a voucher into its fields, or returns why it is malformed. */
function parseVoucher(voucher: string): { notAfter: number; group: string; signature: string } | string {
  const parts = voucher.split('.');
  if (parts.length !== 3) return 'malformed voucher';
  const notAfter = Number(parts[0]);
  if (!Number.isSafeInteger(notAfter) || parts[0]!.length === 0) return 'malformed voucher';
  return { notAfter, group: Buffer.from(parts[1]!, 'base64url').toString('utf8'), signature: parts[2]! };
}

/** The group a voucher names (as its text says; only a check proves it), or null if it is malformed. */
export function voucherGroup(voucher: string | undefined): string | null {
  if (voucher === undefined || voucher.length === 0 || voucher.length > 600) return null;
  const parsed = parseVoucher(voucher);
  return typeof parsed === 'string' ? null : parsed.group;
}

/**
 * Whether `voucher` is a valid voucher for `target` in `group` at `nowMs`
 * under the pinned balancer key, or any of the pinned keys (a balancer's
 * key ring); a string says why not ({@link UNKNOWN_KEY} when no key's
 * signature matches).
 */
export function checkVoucher(
  key: KeyObject | Iterable<KeyObject> | null,
  group: string | null,
  target: string,
  voucher: string | undefined,
  nowMs = Date.now(),
): true | string {
  const keys: KeyObject[] = key === null ? [] : key instanceof KeyObject ? [key] : [...key];
  if (keys.length === 0) return 'no balancer key pinned yet';
  if (group === null) return 'no group pinned yet';
  if (voucher === undefined || voucher.length === 0) return 'no voucher';
  if (voucher.length > 600) return 'voucher too long';
  const parsed = parseVoucher(voucher);
  if (typeof parsed === 'string') return parsed;
  if (parsed.group !== group) return `voucher is for group "${parsed.group.slice(0, 100)}", not this client's group "${group}"`;
  if (parsed.notAfter < nowMs) return 'voucher expired';
  const cacheKey = `${group}|${target}|${voucher}`;
  for (const k of keys) if (verified.get(k)?.get(cacheKey) === parsed.notAfter) return true;
  const payload = vouchPayload(group, target, parsed.notAfter);
  const signature = Buffer.from(parsed.signature, 'base64url');
  for (const k of keys) {
    let ok = false;
    try {
      ok = verify(null, payload, k, signature);
    } catch {
      ok = false;
    }
    if (!ok) continue;
    let cache = verified.get(k);
    if (cache === undefined) {
      cache = new Map();
      verified.set(k, cache);
    }
    if (cache.size > 10_000) cache.clear();
    cache.set(cacheKey, parsed.notAfter);
    return true;
  }
  return UNKNOWN_KEY;
}

/**
 * The keys a key chain (the `rebind-key-chain` trailer) endorses through
 * `trusted`: an entry's key is endorsed when its signature verifies under a
 * trusted key or under a key endorsed so (at most
 * {@link MAX_KEY_CHAIN_ENTRIES} rounds, each trying every entry left
 * against every key found in the round before). Returns the endorsed keys'
 * encodings (SPKI DER, base64url) in the order found, or why the chain is
 * malformed. An entry endorsed by no trusted key adds nothing: a chain made
 * up by someone without a pinned key's private key extends nothing.
 */
export function endorsedKeys(trusted: ReadonlyMap<string, KeyObject>, chain: string): string[] | string {
  const entries = parseKeyChain(chain);
  if (typeof entries === 'string') return entries;
  let left = entries.filter((e) => !trusted.has(e.publicKey));
  let signers = [...trusted.values()];
  const found: string[] = [];
  for (let round = 0; round < MAX_KEY_CHAIN_ENTRIES && left.length > 0 && signers.length > 0; round++) {
    const next: KeyObject[] = [];
    left = left.filter((entry) => {
      const key = balancerKey(entry.publicKey);
      if (key === null) return false;
      const payload = endorsePayload(entry.publicKey);
      const signature = Buffer.from(entry.signature, 'base64url');
      for (const signer of signers) {
        let ok = false;
        try {
          ok = verify(null, payload, signer, signature);
        } catch {
          ok = false;
        }
        if (ok) {
          found.push(entry.publicKey);
          next.push(key);
          return false;
        }
      }
      return true;
    });
    signers = next;
  }
  return found;
}

/**
 * Balancer keys a channel pins at most: the balancer's key ring (4 keys,
 * MAX_RING_KEYS in balancer/keyring.ts) and as many endorsed by its key
 * chain; the least recently pinned is dropped first.
 */
export const MAX_PINNED_KEYS = 8;
/** Key chains a key set remembers having tried (so a repeated chain costs no signature check until the set changes). */
const MAX_TRIED_CHAINS = 16;

/**
 * A channel's pinned balancer keys: the balancer's key ring, pinned from its
 * own forwards, extended by the endorsements in replicas' key chains. At
 * most `max` keys, least recently pinned first (evicted first). A voucher is
 * valid under any of them.
 */
export class PinnedKeys {
  private readonly keys = new Map<string, KeyObject>();
  /** Changes whenever the set does: a chain tried at this version adds nothing when tried again. */
  private version = 0;
  /** Key chains tried, with the version of the set they were tried at. */
  private readonly tried = new Map<string, number>();

  constructor(private readonly max = MAX_PINNED_KEYS) {}

  /** Keys pinned. */
  get size(): number {
    return this.keys.size;
  }

  /** Whether `encoded` (SPKI DER, base64url) is pinned. */
  has(encoded: string): boolean {
    return this.keys.has(encoded);
  }

  /** The pinned keys' encodings, least recently pinned first. */
  list(): string[] {
    return [...this.keys.keys()];
  }

  /** Pins a key as the most recently pinned; false (nothing pinned) if it is not an Ed25519 key. */
  pin(encoded: string): boolean {
    const key = balancerKey(encoded);
    if (key === null) return false;
    const known = this.keys.delete(encoded);
    if (!known && this.keys.size >= this.max) this.keys.delete(this.keys.keys().next().value!);
    this.keys.set(encoded, key);
    if (!known) this.version++;
    return true;
  }

  /**
   * Checks a voucher under the pinned keys. If no pinned key signed it and
   * a key chain came with it, the keys the chain endorses through pinned
   * keys are pinned too (the balancer rotated its key since), and the
   * voucher is checked again. A string says why it is refused: it starts
   * with {@link UNKNOWN_KEY} when the only fault found is the key.
   */
  check(group: string | null, target: string, voucher: string | undefined, chain?: string, nowMs = Date.now()): true | string {
    // Most recently pinned first: the balancer's signing key is pinned last.
    const first = checkVoucher([...this.keys.values()].reverse(), group, target, voucher, nowMs);
    if (first !== UNKNOWN_KEY || chain === undefined || chain === '') return first;
    if (this.tried.get(chain) !== this.version) {
      const endorsed = endorsedKeys(this.keys, chain);
      if (typeof endorsed === 'string') return `malformed key chain: ${endorsed}`;
      for (const key of endorsed) this.pin(key);
      if (this.tried.size >= MAX_TRIED_CHAINS) this.tried.clear();
      this.tried.set(chain, this.version);
      if (endorsed.length > 0) {
        const again = checkVoucher([...this.keys.values()].reverse(), group, target, voucher, nowMs);
        if (again !== UNKNOWN_KEY) return again;
      }
    }
    return `${UNKNOWN_KEY} (nor any key its key chain endorses)`;
  }
}

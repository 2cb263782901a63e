/** The client's side of vouchers (see ../balancer/vouch.ts). */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { vouchPayload } from '../common/wire';

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

/** Whether `voucher` is the pinned balancer's valid voucher for `target` at `nowMs`; a string says why not. */
export function checkVoucher(key: KeyObject | null, target: string, voucher: string | undefined, nowMs = Date.now()): true | string {
  if (key === null) return 'no balancer key pinned yet';
  if (voucher === undefined || voucher.length === 0) return 'no voucher';
  if (voucher.length > 300) return 'voucher too long';
  const dot = voucher.indexOf('.');
  const notAfter = Number(voucher.slice(0, dot));
  if (dot <= 0 || !Number.isSafeInteger(notAfter)) return 'malformed voucher';
  if (notAfter < nowMs) return 'voucher expired';
  const cacheKey = `${target}|${voucher}`;
  let cache = verified.get(key);
  if (cache === undefined) {
    cache = new Map();
    verified.set(key, cache);
  }
  if (cache.get(cacheKey) === notAfter) return true;
  let ok = false;
  try {
    ok = verify(null, vouchPayload(target, notAfter), key, Buffer.from(voucher.slice(dot + 1), 'base64url'));
  } catch {
    ok = false;
  }
  if (!ok) return 'voucher signature does not match the balancer key';
  if (cache.size > 10_000) cache.clear();
  cache.set(cacheKey, notAfter);
  return true;
}

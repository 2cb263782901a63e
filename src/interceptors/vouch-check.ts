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
 * Whether `voucher` is the pinned balancer's valid voucher for `target` in
 * `group` at `nowMs`; a string says why not.
 */
export function checkVoucher(key: KeyObject | null, group: string | null, target: string, voucher: string | undefined, nowMs = Date.now()): true | string {
  if (key === null) return 'no balancer key pinned yet';
  if (group === null) return 'no group pinned yet';
  if (voucher === undefined || voucher.length === 0) return 'no voucher';
  if (voucher.length > 600) return 'voucher too long';
  const parsed = parseVoucher(voucher);
  if (typeof parsed === 'string') return parsed;
  if (parsed.group !== group) return `voucher is for group "${parsed.group.slice(0, 100)}", not this client's group "${group}"`;
  if (parsed.notAfter < nowMs) return 'voucher expired';
  const cacheKey = `${group}|${target}|${voucher}`;
  let cache = verified.get(key);
  if (cache === undefined) {
    cache = new Map();
    verified.set(key, cache);
  }
  if (cache.get(cacheKey) === parsed.notAfter) return true;
  let ok = false;
  try {
    ok = verify(null, vouchPayload(group, target, parsed.notAfter), key, Buffer.from(parsed.signature, 'base64url'));
  } catch {
    ok = false;
  }
  if (!ok) return 'voucher signature does not match the balancer key';
  if (cache.size > 10_000) cache.clear();
  cache.set(cacheKey, parsed.notAfter);
  return true;
}

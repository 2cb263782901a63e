/**
 * Vouchers: the balancer's signature on "this address is a member of group
 * G, until t". A client pins the balancer's public key and its group from
 * the balancer's own forwards, and follows a replica's forward to another
 * replica only if it carries a valid voucher for that target in its own
 * group, so neither a forged trailer nor a voucher the balancer issued for
 * another group can send it to an arbitrary address. Vouchers are short
 * lived (the group's advisoryExpireMs plus {@link VOUCH_MARGIN_MS}: an
 * advisory's moves expire at the replica by then anyway), so a voucher for a
 * member that has left is useless soon after. Ed25519 (node:crypto); one
 * signature per (group, target) per half-validity, cached, so binding stays
 * cheap.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { vouchPayload } from '../common/wire';

/** Validity beyond the group's advisoryExpireMs, ms: covers delivery and clock skew. */
export const VOUCH_MARGIN_MS = 5_000;
/** (group, target) pairs whose voucher is cached; the cache starts over beyond it. */
const MAX_CACHED_VOUCHERS = 100_000;

export class Voucher {
  private readonly privateKey: KeyObject;
  /** SPKI DER of the public key, base64url: what the balancer's forwards carry. */
  readonly publicKey: string;
  private readonly cache = new Map<string, { voucher: string; renewAtMs: number }>();

  constructor(privateKeyPem?: string) {
    if (privateKeyPem !== undefined) {
      this.privateKey = createPrivateKey(privateKeyPem);
    } else {
      this.privateKey = generateKeyPairSync('ed25519').privateKey;
    }
    this.publicKey = createPublicKey(this.privateKey).export({ format: 'der', type: 'spki' }).toString('base64url');
  }

  /**
   * A voucher for `target` in `group`, valid for `validityMs` from about now
   * (a cached one is reused during the first half of its validity).
   * Format: `<notAfterUnixMs>.<base64url(group)>.<base64url signature>`.
   */
  vouch(group: string, target: string, validityMs: number, nowMs = Date.now()): string {
    const key = `${group}|${target}`;
    const cached = this.cache.get(key);
    if (cached !== undefined && nowMs < cached.renewAtMs) return cached.voucher;
    const notAfter = nowMs + validityMs;
    const signature = sign(null, vouchPayload(group, target, notAfter), this.privateKey).toString('base64url');
    const voucher = `${notAfter}.${Buffer.from(group).toString('base64url')}.${signature}`;
    if (this.cache.size >= MAX_CACHED_VOUCHERS) this.cache.clear();
    this.cache.set(key, { voucher, renewAtMs: nowMs + validityMs / 2 });
    return voucher;
  }
}

/**
 * Vouchers: the balancer's signature on "this address is one of my members,
 * until t". A client pins the balancer's public key from the balancer's own
 * forwards and follows a replica's forward to another replica only if it
 * carries a valid voucher, so a forged trailer cannot send it to an
 * arbitrary address. Ed25519 (node:crypto); one signature per target per
 * half-validity, cached, so binding stays cheap.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { vouchPayload } from '../common/wire';

/** How long a voucher stays valid, ms (covers advisory expiry and clock skew). */
export const VOUCH_VALIDITY_MS = 120_000;

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

  /** A voucher for `target`, valid for VOUCH_VALIDITY_MS from about now. */
  vouch(target: string, nowMs = Date.now()): string {
    const cached = this.cache.get(target);
    if (cached !== undefined && nowMs < cached.renewAtMs) return cached.voucher;
    const notAfter = nowMs + VOUCH_VALIDITY_MS;
    const voucher = `${notAfter}.${sign(null, vouchPayload(target, notAfter), this.privateKey).toString('base64url')}`;
    if (this.cache.size > 100_000) this.cache.clear();
    this.cache.set(target, { voucher, renewAtMs: nowMs + VOUCH_VALIDITY_MS / 2 });
    return voucher;
  }
}

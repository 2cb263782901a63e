/**
 * Vouchers: the balancer's signature on "this address is a member of group
 * G, until t". A client pins the balancer's public keys (its key ring, see
 * keyring.ts) and its group from the balancer's own forwards, and follows a replica's forward to another
 * replica only if it carries a valid voucher for that target in its own
 * group, so neither a forged trailer nor a voucher the balancer issued for
 * another group can send it to an arbitrary address. Vouchers are short
 * lived (the group's advisoryExpireMs plus {@link VOUCH_MARGIN_MS}: an
 * advisory's moves expire at the replica by then anyway), so a voucher for a
 * member that has left is useless soon after. Ed25519 (node:crypto); one
 * signature per (group, target) per half-validity, cached, so binding stays
 * cheap.
 */
import { createPrivateKey, sign, type KeyObject } from 'node:crypto';
import { vouchPayload } from '../common/wire';
import { newRing, ringChainText, rotateRing, type RingState } from './keyring';

/** Validity beyond the group's advisoryExpireMs, ms: covers delivery and clock skew. */
export const VOUCH_MARGIN_MS = 5_000;
/** (group, target) pairs whose voucher is cached; the cache starts over beyond it. */
const MAX_CACHED_VOUCHERS = 100_000;

/**
 * Signs vouchers with the newest key of a key ring (see keyring.ts). Without
 * `ha` the ring is one key made at start; {@link load} replaces it with a
 * ring shared by several balancers, {@link rotate} rotates it in process.
 */
export class Voucher {
  private ring: RingState;
  private signingKey: KeyObject;
  private publicKeysText = '';
  private chainText = '';
  /** Cached vouchers by group, then target (two lookups: no key string built per bind); {@link cachedCount} in all. */
  private readonly cache = new Map<string, Map<string, { voucher: string; renewAtMs: number }>>();
  private cachedCount = 0;

  /** A ring of one key: `privateKeyPem` (Ed25519, PKCS#8) or a fresh one. */
  constructor(privateKeyPem?: string) {
    this.ring = newRing(Date.now(), privateKeyPem);
    this.signingKey = createPrivateKey(this.ring.keys[0]!.privateKeyPem);
    this.derive();
  }

  /** SPKI DER of the newest public key, base64url: what the balancer's forwards carry in `rebind-balancer-key`. */
  get publicKey(): string {
    return this.ring.keys[this.ring.keys.length - 1]!.publicKey;
  }

  /** Every public key of the ring, oldest first (the `rebind-balancer-keys` trailer is them comma-joined, {@link publicKeysTrailer}). */
  get publicKeys(): string[] {
    return this.ring.keys.map((k) => k.publicKey);
  }

  /** The `rebind-balancer-keys` trailer: {@link publicKeys} joined by `,`. */
  get publicKeysTrailer(): string {
    return this.publicKeysText;
  }

  /** The ring's key chain (endorsements `pub.sig` joined by `,`; '' for a ring of one key), for advisories. */
  get chain(): string {
    return this.chainText;
  }

  /** The ring in force (its JSON form is serializeRing(state)). */
  get state(): RingState {
    return this.ring;
  }

  /**
   * Signs with `state` from now on (a ring already validated, by parseRing
   * when it comes from outside). Vouchers already issued stay valid at
   * clients that pinned their key or can reach it through the chain.
   */
  load(state: RingState): void {
    const newest = state.keys[state.keys.length - 1];
    if (newest === undefined) throw new Error('Voucher.load: the key ring is empty');
    const signingKey = createPrivateKey(newest.privateKeyPem);
    // A cached voucher signed by the key that stopped signing would keep going out: start over.
    if (newest.publicKey !== this.publicKey) this.clearCache();
    this.ring = { keys: [...state.keys] };
    this.signingKey = signingKey;
    this.derive();
  }

  /** Rotates the ring in process (a new key endorsed by the newest signs from now on); returns the new ring. */
  rotate(nowMs = Date.now()): RingState {
    this.load(rotateRing(this.ring, nowMs));
    return this.ring;
  }

  private clearCache(): void {
    this.cache.clear();
    this.cachedCount = 0;
  }

  private derive(): void {
    this.publicKeysText = this.publicKeys.join(',');
    this.chainText = ringChainText(this.ring);
  }

  /**
   * A voucher for `target` in `group`, valid for `validityMs` from about now
   * (a cached one is reused during the first half of its validity).
   * Format: `<notAfterUnixMs>.<base64url(group)>.<base64url signature>`.
   */
  vouch(group: string, target: string, validityMs: number, nowMs = Date.now()): string {
    const byTarget = this.cache.get(group);
    const cached = byTarget?.get(target);
    if (cached !== undefined && nowMs < cached.renewAtMs) return cached.voucher;
    const notAfter = nowMs + validityMs;
    const signature = sign(null, vouchPayload(group, target, notAfter), this.signingKey).toString('base64url');
    const voucher = `${notAfter}.${Buffer.from(group).toString('base64url')}.${signature}`;
    if (cached === undefined && this.cachedCount >= MAX_CACHED_VOUCHERS) this.clearCache();
    let targets = this.cache.get(group);
    if (targets === undefined) this.cache.set(group, (targets = new Map()));
    if (!targets.has(target)) this.cachedCount++;
    targets.set(target, { voucher, renewAtMs: nowMs + validityMs / 2 });
    return voucher;
  }
}

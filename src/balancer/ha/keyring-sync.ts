/**
 * The vouching key ring shared by every balancer of an HA set, kept in etcd
 * (the coordinator's SharedDoc `keyring`). The first balancer to find no ring
 * writes its own; every balancer loads each ring etcd holds, so a voucher
 * signed by any balancer verifies with the keys any other one hands out.
 * Rotation: whichever balancer first sees the newest key older than
 * `ha.keyRotationMs` writes the rotated ring with compare-and-swap (one
 * writer wins; the others load its ring from the watch). A new key is
 * endorsed by the previous one (keyring.ts), so a client that never saw it
 * still follows a move signed with it. A ring that does not parse is logged,
 * counted, and ignored: the balancer keeps signing with the ring it has.
 */
import type { Logger } from '../../common/logger';
import { parseRing, rotateRing, rotationDue, serializeRing, type RingState } from '../keyring';
import type { Voucher } from '../vouch';
import type { SharedDoc } from './coordinator';

/** How often a balancer checks whether the ring is due for rotation, ms (at most; a tenth of the rotation period when shorter). */
export const KEY_ROTATION_CHECK_MS = 60_000;
/** Name of the SharedDoc holding the ring. */
export const KEYRING_DOC = 'keyring';

export interface KeyRingSyncOptions {
  doc: SharedDoc;
  voucher: Voucher;
  rotationMs: number;
  log: Logger;
  /** A ring from etcd that did not parse (counted as a refusal `ha_bad_keyring`). */
  refused: (reason: string) => void;
  now?: () => number;
}

export class KeyRingSync {
  private unwatch: (() => void) | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** Rotations this balancer wrote. */
  rotations = 0;
  private readonly now: () => number;

  constructor(private readonly options: KeyRingSyncOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Loads `value` (a ring from etcd) into the voucher unless it is malformed or the ring already in use. */
  private load(value: string): RingState | null {
    const ring = parseRing(value);
    if (typeof ring === 'string') {
      this.options.refused('ha_bad_keyring');
      this.options.log.error({ reason: ring }, `ignored the key ring in etcd: ${ring}; still signing with the current ring`);
      return null;
    }
    const before = this.options.voucher.publicKey;
    this.options.voucher.load(ring);
    if (this.options.voucher.publicKey !== before) this.options.log.info({ keys: ring.keys.length, signer: ring.keys.at(-1)!.id }, 'loaded the shared key ring');
    return ring;
  }

  /**
   * Reads the ring (writing this balancer's own when etcd has none), then
   * follows changes and checks for rotation. Resolves once the first read is
   * done; rejects only if that read fails (etcd unreachable): the watch still
   * loads the ring when etcd comes back.
   */
  async start(): Promise<void> {
    this.unwatch = this.options.doc.watch((value) => void this.load(value));
    const period = Math.max(1000, Math.min(KEY_ROTATION_CHECK_MS, Math.floor(this.options.rotationMs / 10)));
    this.timer = setInterval(() => void this.rotateIfDue().catch((err) => this.options.log.warn({ err: (err as Error).message }, 'key rotation check failed')), period);
    this.timer.unref();
    await this.ensure();
  }

  /** The ring in etcd, created from this balancer's own when absent. */
  private async ensure(): Promise<{ ring: RingState; revision: string } | null> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const current = await this.options.doc.get();
      if (current === null) {
        if (await this.options.doc.compareAndSwap(null, serializeRing(this.options.voucher.state))) {
          this.options.log.info({ signer: this.options.voucher.state.keys.at(-1)!.id }, 'wrote the first shared key ring');
          continue; // read it back for its revision
        }
        continue; // another balancer wrote one first
      }
      const ring = this.load(current.value);
      return ring === null ? null : { ring, revision: current.revision };
    }
    return null;
  }

  /**
   * Rotates the ring in etcd if its newest key is older than the rotation
   * period (or now, with `force`: a key that may have leaked). Returns
   * whether this balancer wrote the rotation.
   */
  async rotateIfDue(force = false): Promise<boolean> {
    const current = await this.ensure();
    if (current === null || (!force && !rotationDue(current.ring, this.options.rotationMs, this.now()))) return false;
    const next = rotateRing(current.ring, this.now());
    if (!(await this.options.doc.compareAndSwap(current.revision, serializeRing(next)))) return false;
    this.rotations++;
    this.load(serializeRing(next));
    this.options.log.info({ signer: next.keys.at(-1)!.id, keys: next.keys.length }, 'rotated the shared key ring');
    return true;
  }

  stop(): void {
    this.unwatch?.();
    this.unwatch = null;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }
}

/**
 * What a replica has been advised to do with its clients: which ones to
 * forward or re-bind and where, and which binding to offer clients that
 * understand weighted bindings. The interceptor consults it on every call;
 * when nothing is pending the check is a few field reads.
 */
import { FORWARD_TO_BALANCER, type ForwardReason } from '../common/wire';
import type { Advisory__Output } from '../generated/rebind/v1/Advisory';

/**
 * An advisory as the replica reads it: `keyChain` may be absent (an advisory
 * built by hand, or one from a balancer older than key rings): no chain.
 */
export type AdvisoryInput = Omit<Advisory__Output, 'keyChain'> & { keyChain?: string };

/** Clients a table remembers having made the current offer to (default; the least recently offered is forgotten first). */
export const DEFAULT_MAX_OFFERED_CLIENTS = 10_000;

export interface ForwardDecision {
  /** host:port of the new replica, or "balancer". */
  target: string;
  reason: ForwardReason;
  /** The balancer's voucher for target (none for "balancer"). */
  vouch?: string;
  /** The balancer's key chain, sent beside the voucher ('' or absent: none). */
  chain?: string;
}

/**
 * A binding to send in the trailers of the call's OK response
 * ("piggy-backing"), for a client that understands weighted bindings: the
 * call itself is served here. Hand it back with {@link ForwardTable.settle}
 * once the call's status is known.
 */
export interface PiggyBack {
  readonly kind: 'move' | 'offer';
  readonly clientId: string;
  /** The binding string, as the balancer formatted it. */
  readonly binding: string;
  /** The balancer's voucher for the exact binding string. */
  readonly vouch: string;
  /** The balancer's key chain, sent beside the voucher ('' for none). */
  readonly chain: string;
  /** The move this comes from (kind "move"), to restore if the call fails. */
  readonly move?: PendingMove;
  /** Version of the offer (kind "offer"). */
  readonly version?: number;
}

interface PendingMove {
  target: string;
  vouch: string;
  /** The client's new binding, for a client that understands them ('' for none). */
  binding: string;
  bindingVouch: string;
  expiresAtMs: number;
}

interface Offer {
  binding: string;
  vouch: string;
  expiresAtMs: number;
  version: number;
}

const RECALL: ForwardDecision = Object.freeze({ target: FORWARD_TO_BALANCER, reason: 'recall' });
const DRAIN: ForwardDecision = Object.freeze({ target: FORWARD_TO_BALANCER, reason: 'drain' });

export class ForwardTable {
  private readonly moves = new Map<string, PendingMove>();
  /** Send every direct rebind client that does not understand weighted bindings back to the balancer (per-request mode). */
  recallAll = false;
  /** The replica is shutting down: send every rebind client elsewhere. */
  draining = false;
  /** Advisory moves dropped because the client did not call before they expired. */
  expired = 0;
  /** Clients forgotten from the offered table because it was full (they may be offered the same binding again: harmless). */
  offeredForgotten = 0;
  private offer: Offer | null = null;
  private offerVersion = 0;
  /**
   * The balancer's key chain from its latest advisory (validated, at most
   * MAX_KEY_CHAIN_CHARS), sent beside every voucher. Kept across reset():
   * it only helps clients check vouchers and replaces nothing they trust.
   */
  keyChain = '';
  /**
   * Clients that got the current offer (version), least recently offered
   * first. Bounded by `maxOfferedClients`: the least recently offered is
   * forgotten (counted in `offeredForgotten`) and would get the same offer
   * again, which its client ignores.
   */
  private readonly offered = new Map<string, number>();

  constructor(
    private readonly now: () => number,
    private readonly maxOfferedClients = DEFAULT_MAX_OFFERED_CLIENTS,
  ) {}

  /**
   * Starts over for a new attachment (or none, `recallAll` false, when the
   * control stream is lost): a replica's forward state is derived from what
   * its current attachment says, so a recall, a move or an offer an earlier
   * balancer made never outlives it. Draining is the replica's own decision
   * and stays.
   */
  reset(recallAll: boolean): void {
    this.moves.clear();
    this.recallAll = recallAll;
    this.offer = null;
    this.offered.clear();
  }

  /** Applies an advisory from the balancer (already validated). */
  apply(advisory: AdvisoryInput): void {
    this.recallAll = advisory.recallAll;
    this.keyChain = advisory.keyChain ?? '';
    const now = this.now();
    const expiresAtMs = now + advisory.expireMs;
    for (const move of advisory.moves) {
      this.moves.set(move.clientId, {
        target: move.target === '' ? FORWARD_TO_BALANCER : move.target,
        vouch: move.vouch,
        binding: move.binding,
        bindingVouch: move.bindingVouch,
        expiresAtMs,
      });
    }
    if (advisory.offerBinding === '') {
      this.offer = null;
    } else if (this.offer !== null && this.offer.binding === advisory.offerBinding) {
      // The same offer, vouched again: clients that have it need nothing new.
      this.offer.vouch = advisory.offerVouch;
      this.offer.expiresAtMs = now + advisory.offerExpireMs;
    } else {
      this.offer = { binding: advisory.offerBinding, vouch: advisory.offerVouch, expiresAtMs: now + advisory.offerExpireMs, version: ++this.offerVersion };
    }
  }

  /** Moves not yet executed. */
  get pending(): number {
    return this.moves.size;
  }

  /** The binding offered now, if any. */
  get offerBinding(): string | null {
    return this.offer === null || this.offer.expiresAtMs < this.now() ? null : this.offer.binding;
  }

  /** Clients remembered as having the current offer. */
  get offeredCount(): number {
    return this.offered.size;
  }

  /**
   * What to do with this client's call: a forward to answer it with before
   * any handler runs, a binding to piggy-back on its OK response, or null to
   * simply serve it. A move is used once: the client's later calls follow
   * its new binding. `sets`: the client understands weighted bindings.
   */
  take(clientId: string | null, sets = false): ForwardDecision | PiggyBack | null {
    if (this.draining) return DRAIN;
    if (clientId !== null && this.moves.size > 0) {
      const move = this.moves.get(clientId);
      if (move !== undefined) {
        this.moves.delete(clientId);
        if (move.expiresAtMs < this.now()) {
          this.expired++;
        } else if (sets && move.binding !== '') {
          return { kind: 'move', clientId, binding: move.binding, vouch: move.bindingVouch, chain: this.keyChain, move };
        } else {
          if (move.vouch === '') return { target: move.target, reason: 'advisory' };
          return this.keyChain === '' ? { target: move.target, reason: 'advisory', vouch: move.vouch } : { target: move.target, reason: 'advisory', vouch: move.vouch, chain: this.keyChain };
        }
      }
    }
    if (!sets) return this.recallAll ? RECALL : null;
    const offer = this.offer;
    if (offer === null || clientId === null || this.offered.get(clientId) === offer.version) return null;
    if (offer.expiresAtMs < this.now()) return null;
    return { kind: 'offer', clientId, binding: offer.binding, vouch: offer.vouch, chain: this.keyChain, version: offer.version };
  }

  /**
   * The call a piggy-back rode on ended: with `ok`, the binding went out
   * (an offer is remembered as made to the client); otherwise a move is put
   * back for the client's next call, unless a newer one arrived meanwhile.
   */
  settle(piggy: PiggyBack, ok: boolean): void {
    if (piggy.kind === 'move') {
      if (!ok && piggy.move !== undefined && !this.moves.has(piggy.clientId)) this.moves.set(piggy.clientId, piggy.move);
      return;
    }
    if (!ok || piggy.version !== this.offer?.version) return;
    this.offered.delete(piggy.clientId);
    if (this.offered.size >= this.maxOfferedClients) {
      this.offered.delete(this.offered.keys().next().value!);
      this.offeredForgotten++;
    }
    this.offered.set(piggy.clientId, piggy.version ?? 0);
  }

  /** Drops expired moves (called once per report interval). */
  sweep(): void {
    const now = this.now();
    for (const [clientId, move] of this.moves) {
      if (move.expiresAtMs < now) {
        this.moves.delete(clientId);
        this.expired++;
      }
    }
  }
}

/** Whether a {@link ForwardTable.take} result is a piggy-back (else a forward). */
export function isPiggyBack(x: ForwardDecision | PiggyBack): x is PiggyBack {
  return 'kind' in x;
}

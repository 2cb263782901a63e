/**
 * What a replica has been advised to do with its clients: which ones to
 * forward and where. The interceptor consults it on every call; when nothing
 * is pending the check is two field reads.
 */
import { FORWARD_TO_BALANCER, type ForwardReason } from '../common/wire';
import type { Advisory__Output } from '../generated/rebind/v1/Advisory';

export interface ForwardDecision {
  /** host:port of the new replica, or "balancer". */
  target: string;
  reason: ForwardReason;
  /** The balancer's voucher for target (none for "balancer"). */
  vouch?: string;
}

interface PendingMove {
  target: string;
  vouch: string;
  expiresAtMs: number;
}

const RECALL: ForwardDecision = Object.freeze({ target: FORWARD_TO_BALANCER, reason: 'recall' });
const DRAIN: ForwardDecision = Object.freeze({ target: FORWARD_TO_BALANCER, reason: 'drain' });

export class ForwardTable {
  private readonly moves = new Map<string, PendingMove>();
  /** Send every direct rebind client back to the balancer (per-request mode). */
  recallAll = false;
  /** The replica is shutting down: send every rebind client elsewhere. */
  draining = false;
  /** Advisory moves dropped because the client did not call before they expired. */
  expired = 0;

  constructor(private readonly now: () => number) {}

  /**
   * Starts over for a new attachment (or none, `recallAll` false, when the
   * control stream is lost): a replica's forward state is derived from what
   * its current attachment says, so a recall or a move an earlier balancer
   * asked for never outlives it. Draining is the replica's own decision and
   * stays.
   */
  reset(recallAll: boolean): void {
    this.moves.clear();
    this.recallAll = recallAll;
  }

  /** Applies an advisory from the balancer (already validated). */
  apply(advisory: Advisory__Output): void {
    this.recallAll = advisory.recallAll;
    const expiresAtMs = this.now() + advisory.expireMs;
    for (const move of advisory.moves) {
      this.moves.set(move.clientId, { target: move.target === '' ? FORWARD_TO_BALANCER : move.target, vouch: move.vouch, expiresAtMs });
    }
  }

  /** Moves not yet executed. */
  get pending(): number {
    return this.moves.size;
  }

  /**
   * The forward to answer this client's call with, or null to serve it.
   * A move is used once: the client's later calls reach its new replica.
   */
  take(clientId: string | null): ForwardDecision | null {
    if (this.draining) return DRAIN;
    if (this.recallAll) return RECALL;
    if (this.moves.size === 0 || clientId === null) return null;
    const move = this.moves.get(clientId);
    if (move === undefined) return null;
    this.moves.delete(clientId);
    if (move.expiresAtMs < this.now()) {
      this.expired++;
      return null;
    }
    return move.vouch !== '' ? { target: move.target, reason: 'advisory', vouch: move.vouch } : { target: move.target, reason: 'advisory' };
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

/**
 * The balancer's recent decisions and membership changes, for people
 * watching it: advisories sent, members joining, leaving and changing state,
 * recalls, strategy and granularity switches. A bounded ring of the latest
 * entries plus listeners (the dashboard's live feed).
 */

export type DecisionKind = 'advisory' | 'member-joined' | 'member-left' | 'member-state' | 'recall' | 'strategy' | 'granularity' | 'leader';

export interface Decision {
  /** Increases by one per entry. */
  seq: number;
  /** Wall-clock time, ms since the epoch. */
  atMs: number;
  kind: DecisionKind;
  group: string;
  /** One line saying what happened, e.g. "advisory to m2: move 2 client(s) to 127.0.0.1:7001". */
  text: string;
}

/** Entries kept for a newly connected viewer. */
export const DECISIONS_KEPT = 200;

export class DecisionLog {
  private readonly ring: Decision[] = [];
  private seq = 0;
  private readonly listeners = new Set<(d: Decision) => void>();

  constructor(private readonly now: () => number = Date.now) {}

  record(kind: DecisionKind, group: string, text: string): Decision {
    const decision: Decision = { seq: ++this.seq, atMs: this.now(), kind, group, text };
    this.ring.push(decision);
    if (this.ring.length > DECISIONS_KEPT) this.ring.shift();
    for (const listener of this.listeners) listener(decision);
    return decision;
  }

  /** The latest entries, oldest first. */
  recent(): readonly Decision[] {
    return this.ring;
  }

  /** Calls `listener` for every new entry until the returned function is called. */
  subscribe(listener: (d: Decision) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

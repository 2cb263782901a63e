/**
 * The ledger's client-keyed tables, flat: each remembered client's last
 * binding (in bind order, least recently bound first) and which of them were
 * bound recently, kept in typed arrays indexed by slot, with an
 * open-addressing index from client id to slot.
 *
 * Why not Maps: at 10,000 binds/s a Map keyed by client id that is deleted
 * from and re-inserted into (to keep bind order, to evict, to expire recent
 * binds) rehashes into a new table every few thousand operations; at 100,000
 * clients each table is ~2 MB, allocated straight into the old generation,
 * and every dead one waits for a full mark-compact. Per bind the Maps also
 * left a Binding object and a boxed time behind. Here a bind writes numbers
 * into arrays allocated once (grown by doubling up to the bound), and what a
 * remembered client costs is its id string and ~50 bytes of array slots.
 *
 * Recent binds (for racing first calls) are a ring of (slot, sequence) in
 * bind order: an entry is live while its slot's recent sequence is still the
 * entry's (a re-bind gives the slot a new one; forgetting clears it). Stale
 * entries are skipped when met and squeezed out when the ring fills.
 */
import type { BindingShare, BindingVia } from './ledger';

const VIA: readonly BindingVia[] = ['bind', 'plan', 'avoid'];
const VIA_CODE: Readonly<Record<BindingVia, number>> = { bind: 0, plan: 1, avoid: 2 };
const INITIAL_SLOTS = 1024;

/** FNV-1a over the UTF-16 code units. */
function hashOf(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

export class ClientBindings {
  /** Clients remembered. */
  size = 0;
  /** Live entries of the recent ring (clients bound recently and not forgotten since). */
  recentSize = 0;

  // Per slot.
  private ids: (string | undefined)[] = [];
  private members: (readonly BindingShare[] | undefined)[] = [];
  private since = new Float64Array(INITIAL_SLOTS);
  private via = new Uint8Array(INITIAL_SLOTS);
  private hashes = new Uint32Array(INITIAL_SLOTS);
  /** Bind order, a doubly linked list through slots (-1: none). */
  private older = new Int32Array(INITIAL_SLOTS);
  private newer = new Int32Array(INITIAL_SLOTS);
  /** The sequence of the slot's live recent entry, 0 when it has none. */
  private recentSeq = new Float64Array(INITIAL_SLOTS);
  private slots = INITIAL_SLOTS;
  private used = 0;
  private readonly free: number[] = [];
  private oldest = -1;
  private newest = -1;

  /** Index: slot + 1 at the client id's hash position (0: empty), linear probing, kept under half full. */
  private index = new Int32Array(INITIAL_SLOTS * 2);
  private mask = INITIAL_SLOTS * 2 - 1;

  // The recent ring.
  private readonly ringSlot: Int32Array;
  private readonly ringSeq: Float64Array;
  private ringHead = 0;
  private ringLength = 0;
  private seq = 0;

  /**
   * @param maxSlots clients remembered at most (the caller evicts before adding beyond it)
   * @param maxRecent live recent entries at most (the caller forgets the oldest before adding beyond it)
   */
  constructor(
    private readonly maxSlots: number,
    maxRecent: number,
  ) {
    // Twice the live bound: when the ring fills, at least half of it is stale and squeezed out.
    this.ringSlot = new Int32Array(maxRecent * 2);
    this.ringSeq = new Float64Array(maxRecent * 2);
  }

  /** The client's slot, or -1. */
  find(id: string): number {
    const ids = this.ids;
    const index = this.index;
    const mask = this.mask;
    for (let i = hashOf(id) & mask; ; i = (i + 1) & mask) {
      const v = index[i]!;
      if (v === 0) return -1;
      if (ids[v - 1] === id) return v - 1;
    }
  }

  idOf(slot: number): string {
    return this.ids[slot]!;
  }
  membersOf(slot: number): readonly BindingShare[] {
    return this.members[slot]!;
  }
  sinceOf(slot: number): number {
    return this.since[slot]!;
  }
  viaOf(slot: number): BindingVia {
    return VIA[this.via[slot]!]!;
  }
  isRecent(slot: number): boolean {
    return this.recentSeq[slot] !== 0;
  }

  /** Adds a client (not yet remembered; the caller keeps size under maxSlots): returns its slot, newest in bind order. */
  add(id: string, members: readonly BindingShare[], sinceMs: number, via: BindingVia): number {
    if (this.size >= this.maxSlots) throw new Error(`ClientBindings: ${this.maxSlots} clients remembered already`);
    let slot = this.free.pop();
    if (slot === undefined) {
      if (this.used === this.slots) this.grow();
      slot = this.used++;
    }
    const h = hashOf(id);
    this.ids[slot] = id;
    this.hashes[slot] = h;
    this.recentSeq[slot] = 0;
    this.size++;
    // Rehashing places the linked slots; this one is linked below.
    if (this.size * 2 > this.mask + 1) this.rehash((this.mask + 1) * 2);
    this.place(slot, h);
    this.set(slot, members, sinceMs, via);
    this.link(slot);
    return slot;
  }

  /** Gives a remembered client a new binding and makes it the newest in bind order. */
  rebind(slot: number, members: readonly BindingShare[], sinceMs: number, via: BindingVia): void {
    this.set(slot, members, sinceMs, via);
    this.unlink(slot);
    this.link(slot);
  }

  /** The least recently bound client's slot, or -1. */
  oldestSlot(): number {
    return this.oldest;
  }

  /** Forgets a client (and its recent entry). */
  remove(slot: number): void {
    this.forgetRecent(slot);
    this.unlink(slot);
    this.unplace(slot);
    this.ids[slot] = undefined;
    this.members[slot] = undefined;
    this.free.push(slot);
    this.size--;
  }

  /** Slots in bind order, least recently bound first. */
  *inOrder(): IterableIterator<number> {
    for (let s = this.oldest; s !== -1; s = this.newer[s]!) yield s;
  }

  // --- recent ------------------------------------------------------------

  /** Makes the client's current binding recent (newest in the ring); a live entry it had becomes stale. */
  markRecent(slot: number): void {
    if (this.recentSeq[slot] === 0) this.recentSize++;
    const seq = ++this.seq;
    this.recentSeq[slot] = seq;
    if (this.ringLength === this.ringSlot.length) this.squeezeRing();
    const at = (this.ringHead + this.ringLength) % this.ringSlot.length;
    this.ringSlot[at] = slot;
    this.ringSeq[at] = seq;
    this.ringLength++;
  }

  /** Ends the client's recent entry, if live. */
  forgetRecent(slot: number): void {
    if (this.recentSeq[slot] === 0) return;
    this.recentSeq[slot] = 0;
    this.recentSize--;
  }

  /** The slot of the oldest live recent entry, or -1 (stale entries before it are dropped from the ring). */
  oldestRecent(): number {
    while (this.ringLength > 0) {
      const slot = this.ringSlot[this.ringHead]!;
      if (this.recentSeq[slot] === this.ringSeq[this.ringHead]) return slot;
      this.ringHead = (this.ringHead + 1) % this.ringSlot.length;
      this.ringLength--;
    }
    return -1;
  }

  /** Calls `visit` with each slot that has a live recent entry. */
  forEachRecent(visit: (slot: number) => void): void {
    const n = this.ringSlot.length;
    for (let k = 0; k < this.ringLength; k++) {
      const at = (this.ringHead + k) % n;
      const slot = this.ringSlot[at]!;
      if (this.recentSeq[slot] === this.ringSeq[at]) visit(slot);
    }
  }

  /** Drops the stale entries of a full ring, keeping the live ones in order (at most half of it: see the constructor). */
  private squeezeRing(): void {
    const n = this.ringSlot.length;
    let kept = 0;
    for (let k = 0; k < this.ringLength; k++) {
      const at = (this.ringHead + k) % n;
      const slot = this.ringSlot[at]!;
      const seq = this.ringSeq[at]!;
      if (this.recentSeq[slot] !== seq) continue;
      // Written at or before where it was read: in place, in order.
      const to = (this.ringHead + kept) % n;
      this.ringSlot[to] = slot;
      this.ringSeq[to] = seq;
      kept++;
    }
    this.ringLength = kept;
    if (kept === n) throw new Error('ClientBindings: more live recent entries than the ring holds');
  }

  // --- storage -------------------------------------------------------------

  private set(slot: number, members: readonly BindingShare[], sinceMs: number, via: BindingVia): void {
    this.members[slot] = members;
    this.since[slot] = sinceMs;
    this.via[slot] = VIA_CODE[via];
  }

  private link(slot: number): void {
    this.older[slot] = this.newest;
    this.newer[slot] = -1;
    if (this.newest !== -1) this.newer[this.newest] = slot;
    else this.oldest = slot;
    this.newest = slot;
  }

  private unlink(slot: number): void {
    const o = this.older[slot]!;
    const n = this.newer[slot]!;
    if (o !== -1) this.newer[o] = n;
    else this.oldest = n;
    if (n !== -1) this.older[n] = o;
    else this.newest = o;
  }

  private place(slot: number, h: number): void {
    const index = this.index;
    const mask = this.mask;
    let i = h & mask;
    while (index[i] !== 0) i = (i + 1) & mask;
    index[i] = slot + 1;
  }

  /** Removes the slot from the index, shifting back the entries of its probe run (no tombstones). */
  private unplace(slot: number): void {
    const index = this.index;
    const mask = this.mask;
    let i = this.hashes[slot]! & mask;
    while (index[i] !== slot + 1) i = (i + 1) & mask;
    index[i] = 0;
    for (let j = (i + 1) & mask; index[j] !== 0; j = (j + 1) & mask) {
      const home = this.hashes[index[j]! - 1]! & mask;
      // The entry at j may move to the hole at i unless its home lies cyclically in (i, j].
      const stays = i <= j ? home > i && home <= j : home > i || home <= j;
      if (!stays) {
        index[i] = index[j]!;
        index[j] = 0;
        i = j;
      }
    }
  }

  private rehash(size: number): void {
    this.index = new Int32Array(size);
    this.mask = size - 1;
    for (let s = this.oldest; s !== -1; s = this.newer[s]!) this.place(s, this.hashes[s]!);
  }

  private grow(): void {
    const slots = Math.min(this.slots * 2, Math.max(this.maxSlots, INITIAL_SLOTS));
    const grown = <T extends Float64Array | Uint8Array | Uint32Array | Int32Array>(a: T, make: (n: number) => T): T => {
      const b = make(slots);
      b.set(a);
      return b;
    };
    this.since = grown(this.since, (n) => new Float64Array(n));
    this.via = grown(this.via, (n) => new Uint8Array(n));
    this.hashes = grown(this.hashes, (n) => new Uint32Array(n));
    this.older = grown(this.older, (n) => new Int32Array(n));
    this.newer = grown(this.newer, (n) => new Int32Array(n));
    this.recentSeq = grown(this.recentSeq, (n) => new Float64Array(n));
    this.slots = slots;
  }
}

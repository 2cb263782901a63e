import { describe, expect, it } from 'vitest';
import { ClientBindings } from '../../src/balancer/client-bindings';
import type { BindingShare } from '../../src/balancer/ledger';
import { seededRandom } from '../../src/sim/rng';

const to = (memberId: string): readonly BindingShare[] => [{ memberId, share: 1 }];

describe('ClientBindings (the ledger flat store)', () => {
  it('agrees with a Map model through adds, re-binds, removals of the oldest and of any client, growth and index rehashes', () => {
    const max = 5000;
    const store = new ClientBindings(max, 100);
    // The model: insertion order is bind order (a re-bind deletes and re-inserts).
    const model = new Map<string, { member: string; since: number }>();
    const random = seededRandom(7);
    for (let step = 0; step < 60_000; step++) {
      const r = random();
      const id = `client-${Math.floor(random() * 8000)}`;
      const slot = store.find(id);
      expect(slot >= 0).toBe(model.has(id));
      if (r < 0.6) {
        const member = `m${Math.floor(random() * 9)}`;
        if (slot >= 0) {
          store.rebind(slot, to(member), step, 'bind');
          model.delete(id);
        } else {
          if (model.size >= max) {
            const oldest = store.oldestSlot();
            const [oldestId] = model.keys();
            expect(store.idOf(oldest)).toBe(oldestId);
            store.remove(oldest);
            model.delete(oldestId!);
          }
          store.add(id, to(member), step, 'plan');
        }
        model.set(id, { member, since: step });
      } else if (r < 0.75 && slot >= 0) {
        store.remove(slot);
        model.delete(id);
      } else if (slot >= 0) {
        const want = model.get(id)!;
        expect(store.membersOf(slot)[0]!.memberId).toBe(want.member);
        expect(store.sinceOf(slot)).toBe(want.since);
      }
      expect(store.size).toBe(model.size);
    }
    expect(model.size).toBeGreaterThan(1000);
    // Bind order, oldest first, equals the model's insertion order.
    expect([...store.inOrder()].map((s) => store.idOf(s))).toEqual([...model.keys()]);
    // Every remembered client is found at a slot holding its id; forgotten ones are not found.
    for (const id of model.keys()) expect(store.idOf(store.find(id))).toBe(id);
    for (let i = 0; i < 8000; i++) if (!model.has(`client-${i}`)) expect(store.find(`client-${i}`)).toBe(-1);
  });

  it('keeps recent entries in bind order: a re-bind moves its entry to the end, stale entries are skipped and squeezed out when the ring fills', () => {
    const maxRecent = 4; // a ring of 8
    const store = new ClientBindings(100, maxRecent);
    const slots = ['a', 'b', 'c'].map((id) => store.add(id, to('m1'), 0, 'bind'));
    for (const s of slots) store.markRecent(s);
    expect(store.recentSize).toBe(3);
    // 'a' re-bound: its first entry is stale, its live one is the newest.
    store.markRecent(slots[0]!);
    expect(store.recentSize).toBe(3);
    expect(store.idOf(store.oldestRecent())).toBe('b');
    store.forgetRecent(slots[1]!);
    expect(store.idOf(store.oldestRecent())).toBe('c');
    // 'b' bound again, then 'c' and 'a' re-bound over and over: the ring (8 entries) fills with
    // stale entries and is squeezed, never losing the live ones ('b' is not re-bound: its one
    // entry must outlive every squeeze) nor their order.
    store.markRecent(slots[1]!);
    for (let i = 0; i < 50; i++) {
      store.markRecent(slots[2]!);
      store.markRecent(slots[0]!);
    }
    expect(store.recentSize).toBe(3);
    const live: string[] = [];
    store.forEachRecent((s) => live.push(store.idOf(s)));
    expect(live).toEqual(['b', 'c', 'a']);
    expect(store.idOf(store.oldestRecent())).toBe('b');
    // Removing a client ends its recent entry.
    store.remove(slots[1]!);
    expect(store.recentSize).toBe(2);
    expect(store.idOf(store.oldestRecent())).toBe('c');
  });

  it('refuses to hold more clients than its bound', () => {
    const store = new ClientBindings(2, 2);
    store.add('a', to('m1'), 0, 'bind');
    store.add('b', to('m1'), 0, 'bind');
    expect(() => store.add('c', to('m1'), 0, 'bind')).toThrow(/2 clients remembered/);
  });
});

/**
 * A frozen copy of the bind/call choice as it was before the group kept its
 * members' loads in a compact store (commit 26a7c43: Group.choose's member
 * selection and strategies/choose.ts chooseLeastLoaded / projectedLoad, and
 * p2c's choose), reading every Member object. test/unit/choose-store.test.ts
 * runs random sequences of reports, binds, calls, state changes and joins /
 * leaves against a group and checks that the group picks the member this
 * copy picks, drawing the same random numbers. Do not "fix" this file along
 * with the code: it is the yardstick. One deliberate change since: ties are
 * broken with one draw (a uniform index among the tied members) instead of
 * reservoir sampling's draw per tied member (the rule changed on purpose;
 * this copy follows it so that it still checks the compact store).
 */
import { canonicalAddress } from '../../src/common/address';
import type { Member } from '../../src/balancer/member';

const TIE_BAND = 0.05;

/** What the choice reads from a group besides its members. */
export interface ReferenceView {
  /** The group's members, in the group's order. */
  readonly members: ReadonlyMap<string, Member>;
  /** The member id of the client's recent binding's first member, if the client has one. */
  readonly recentMemberId: (clientId: string, nowMs: number) => string | undefined;
  readonly expectedClientLoad: number;
  readonly expectedCallLoad: number;
  /** Live balancers (already as peerCount gives them). */
  readonly peerBalancers: number;
}

/** Projected load, member by member (objects, as before). */
function projectedLoad(m: Member, peers: number, view: ReferenceView): number {
  return m.load + m.pendingBinds * peers * view.expectedClientLoad + m.pendingCalls * view.expectedCallLoad;
}

function chooseLeastLoaded(members: readonly Member[], peers: number, view: ReferenceView, random: () => number): number {
  const loads = members.map((m) => projectedLoad(m, peers, view));
  let least = Infinity;
  for (const load of loads) least = Math.min(least, load);
  const limit = least + Math.max(Math.abs(least) * TIE_BAND, 1e-9);
  const tiedAt: number[] = [];
  for (let i = 0; i < members.length; i++) if (loads[i]! <= limit) tiedAt.push(i);
  if (tiedAt.length <= 1) return tiedAt[0] ?? 0;
  return tiedAt[Math.min(tiedAt.length - 1, Math.floor(random() * tiedAt.length))]!;
}

function chooseP2c(members: readonly Member[], peers: number, view: ReferenceView, random: () => number): number {
  const n = members.length;
  if (n === 1) return 0;
  const first = Math.min(n - 1, Math.floor(random() * n));
  let second = Math.min(n - 2, Math.floor(random() * (n - 1)));
  if (second >= first) second++;
  return projectedLoad(members[second]!, peers, view) < projectedLoad(members[first]!, peers, view) ? second : first;
}

/**
 * The member the group would choose (the member for a recent binding, or
 * the strategy's pick among those eligible and not avoided / set aside),
 * or null for none. Has no side effects: the caller applies an avoid's
 * noteAvoided to the group first, as Group.choose does before it filters.
 */
export function referenceChoose(
  view: ReferenceView,
  strategy: 'least' | 'p2c',
  path: string,
  kind: 'bind' | 'call',
  clientId: string | null,
  nowMs: number,
  avoid: ReadonlySet<string> | undefined,
  random: () => number,
): Member | null {
  let members = [...view.members.values()].filter((m) => m.methodPaths.has(path) && m.state !== 'DRAINING' && m.state !== 'SUSPECT');
  if (members.length === 0) return null;
  if (avoid !== undefined && avoid.size > 0) {
    const others = members.filter((m) => !avoid.has(canonicalAddress(m.address) ?? m.address));
    if (others.length > 0) members = others;
  }
  if (members.some((m) => m.setAsideUntilMs > nowMs)) {
    const others = members.filter((m) => m.setAsideUntilMs <= nowMs);
    if (others.length > 0) members = others;
  }
  if (kind === 'bind' && clientId !== null) {
    const recentId = view.recentMemberId(clientId, nowMs);
    const recent = recentId === undefined ? undefined : members.find((m) => m.id === recentId);
    if (recent !== undefined) return recent;
  }
  const peers = kind === 'bind' ? view.peerBalancers : 1;
  const index = strategy === 'least' ? chooseLeastLoaded(members, peers, view, random) : chooseP2c(members, peers, view, random);
  return members[index] ?? members[0]!;
}

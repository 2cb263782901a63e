/**
 * Member registry: which groups exist, which replicas are attached to each,
 * and which group serves which method path. A member is added on attach and
 * removed on detach, on loss of its control stream, or after it misses
 * `missedReports` consecutive reports (see ./analyzer.ts).
 */
import { status as Status } from '@grpc/grpc-js';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { Logger } from '../common/logger';
import type { Hello__Output } from '../generated/rebind/v1/Hello';
import type { BalancerConfig, GroupConfig } from './config';
import { Group } from './group';
import { Member, type AdvisorySink } from './member';
import type { Refusal } from './validate';

/** Events the registry emits, for the analyzer and observers. */
export interface RegistryListener {
  groupAdded?(group: Group): void;
  /** An auto-created group was removed after staying empty for `limits.autoGroupIdleMs`. */
  groupRemoved?(group: Group): void;
  memberAdded?(group: Group, member: Member): void;
  memberRemoved?(group: Group, member: Member, reason: string): void;
}

/** Replica ids remembered to tell a re-attachment from a first attachment (a counter's input only). */
const MAX_REMEMBERED_REPLICAS = 10_000;
/**
 * Paths whose last serving member left, remembered (least recently released
 * first) so that calls to them get UNAVAILABLE from their last group rather
 * than UNIMPLEMENTED, until another group takes them.
 */
export const MAX_RELEASED_PATHS = 10_000;

/** Owner of a method path: the group, and how many of its members advertise the path. */
interface PathOwner {
  group: Group;
  members: number;
}

/** Constant-time comparison of two secrets (false when either is empty). */
function sameSecret(a: string, b: string): boolean {
  if (a.length === 0 || a.length !== b.length) return false;
  return timingSafeEqual(Buffer.from(a), Buffer.from(b));
}

/** A fresh random secret (24 characters of base64url). */
export function newSecret(): string {
  return randomBytes(18).toString('base64url');
}

export class Registry {
  readonly groups = new Map<string, Group>();
  /**
   * Who serves each method path. A path belongs to one group while any
   * member of that group (in any state: SUSPECT and DRAINING members are
   * still members) advertises it; entries go when the last one leaves, so
   * the index never holds more than the attached members advertise.
   */
  private readonly pathIndex = new Map<string, PathOwner>();
  private readonly released = new Map<string, Group>();
  /** Replica ids that ever attached (bounded), to count re-attachments. */
  private readonly seenReplicaIds = new Set<string>();
  private nextMemberNumber = 1;
  private readonly listeners: RegistryListener[] = [];
  /**
   * Live balancers binding clients to these members: 1 (this one) without
   * HA; with HA the coordinator's peer count. Each group's bind choice
   * counts its pending binds that many times, so that balancers binding
   * from the same reports do not herd new clients onto one member.
   */
  peerBalancers: () => number = () => 1;

  constructor(
    private config: BalancerConfig,
    private readonly log: Logger,
    private readonly random: () => number = Math.random,
  ) {
    for (const g of config.groups) this.addGroup(g, false);
  }

  listen(listener: RegistryListener): void {
    this.listeners.push(listener);
  }

  private addGroup(config: GroupConfig, autoCreated: boolean): Group {
    const group = new Group(config, this.log, this.random);
    group.autoCreated = autoCreated;
    group.maxPendingBindsPerCaller = this.config.limits.maxPendingBindsPerCaller;
    group.peerBalancers = () => this.peerBalancers();
    this.groups.set(config.name, group);
    for (const l of this.listeners) l.groupAdded?.(group);
    return group;
  }

  /** Method paths currently owned by some group (attached members advertise them). */
  get ownedPaths(): number {
    return this.pathIndex.size;
  }

  /** Groups created on a replica's first attach (not configured). */
  get autoGroups(): number {
    let n = 0;
    for (const g of this.groups.values()) if (g.autoCreated) n++;
    return n;
  }

  /** The group serving a method path, if any (it may have no member left). */
  route(path: string): Group | undefined {
    const owner = this.pathIndex.get(path);
    if (owner !== undefined) return owner.group;
    const last = this.released.get(path);
    return last !== undefined && this.groups.get(last.name) === last ? last : undefined;
  }

  /**
   * Attaches a replica (its Hello already validated). Returns the new member
   * or a refusal saying why it cannot join. Every check comes before any
   * change: a refused Hello creates no group and touches no index.
   */
  attach(hello: Hello__Output, sink: AdvisorySink, nowMs: number): Member | Refusal {
    let group = this.groups.get(hello.group);
    if (group === undefined && !this.config.autoCreateGroups) {
      const known = [...this.groups.keys()].slice(0, 20).join(', ') || 'none';
      return { code: Status.NOT_FOUND, message: `group "${hello.group}" is not configured on this balancer (configured: ${known})` };
    }
    for (const m of hello.methods) {
      const owner = this.pathIndex.get(m.path);
      if (owner !== undefined && owner.group.name !== hello.group) {
        return {
          code: Status.FAILED_PRECONDITION,
          message: `method ${m.path} is already served by group "${owner.group.name}" (${owner.members} member(s)); a path belongs to one group while any of its members serves it`,
        };
      }
    }
    let replacing: Member | undefined;
    if (group !== undefined) {
      const existing = group.memberAt(hello.address);
      if (existing !== undefined) {
        if (!sameSecret(hello.resumeSecret, existing.resumeSecret)) {
          return {
            code: Status.ALREADY_EXISTS,
            message: `address ${hello.address} is already attached to group "${group.name}" as member ${existing.id}; only that attachment's own replica (presenting its resume secret) may replace it`,
          };
        }
        replacing = existing;
      } else if (group.members.size >= group.config.maxMembers) {
        return { code: Status.RESOURCE_EXHAUSTED, message: `group "${group.name}" already has ${group.members.size} members (limit maxMembers=${group.config.maxMembers})` };
      }
    } else if (this.autoGroups >= this.config.limits.maxAutoGroups) {
      return {
        code: Status.RESOURCE_EXHAUSTED,
        message: `cannot create group "${hello.group}": ${this.config.limits.maxAutoGroups} auto-created groups exist already (limit limits.maxAutoGroups)`,
        reason: 'auto_group_limit',
      };
    }
    if (replacing !== undefined) {
      // The same replica re-attaching before its old stream was seen to die.
      this.detach(replacing, 'replaced by a new attachment of the same replica');
      replacing.sink.close(Status.ABORTED, 'replaced by a new attachment of the same replica');
    }
    if (group === undefined) {
      group = this.addGroup({ name: hello.group, ...this.config.groupDefaults }, true);
      this.log.info({ group: group.name }, `group ${group.name} created on first attach`);
    }
    const member = new Member(`m${this.nextMemberNumber++}`, group.name, hello.address, hello.methods, sink, nowMs, hello.replicaId, newSecret(), newSecret());
    group.addMember(member);
    group.emptySinceMs = null;
    for (const path of member.methodPaths) {
      const owner = this.pathIndex.get(path);
      if (owner !== undefined) owner.members++;
      else {
        this.pathIndex.set(path, { group, members: 1 });
        this.released.delete(path);
      }
    }
    group.counters.attaches++;
    if (hello.replicaId !== '') {
      if (this.seenReplicaIds.has(hello.replicaId)) {
        group.counters.reattaches++;
      } else {
        if (this.seenReplicaIds.size >= MAX_REMEMBERED_REPLICAS) this.seenReplicaIds.delete(this.seenReplicaIds.values().next().value!);
        this.seenReplicaIds.add(hello.replicaId);
      }
    }
    this.log.info({ group: group.name, member: member.id, address: member.address, methods: hello.methods.length }, `member ${member.id} (${member.address}) attached to ${group.name}`);
    for (const l of this.listeners) l.memberAdded?.(group, member);
    return member;
  }

  /** Removes a member; idempotent. */
  detach(member: Member, reason: string): void {
    const group = this.groups.get(member.group);
    if (group === undefined || group.members.get(member.id) !== member) return;
    group.removeMember(member.id);
    for (const path of member.methodPaths) {
      const owner = this.pathIndex.get(path);
      if (owner === undefined || owner.group !== group) continue;
      if (--owner.members > 0) continue;
      this.pathIndex.delete(path);
      if (this.released.size >= MAX_RELEASED_PATHS) this.released.delete(this.released.keys().next().value!);
      this.released.set(path, group);
    }
    this.log.info({ group: group.name, member: member.id, address: member.address, reason }, `member ${member.id} (${member.address}) removed: ${reason}`);
    for (const l of this.listeners) l.memberRemoved?.(group, member, reason);
  }

  /**
   * Removes an auto-created group once it has been empty for
   * `limits.autoGroupIdleMs` (called from the group's own analysis loop).
   * Returns true if the group was removed.
   */
  sweepIdle(group: Group, nowMs: number): boolean {
    if (!group.autoCreated || this.groups.get(group.name) !== group) return false;
    if (group.members.size > 0) {
      group.emptySinceMs = null;
      return false;
    }
    group.emptySinceMs ??= nowMs;
    if (nowMs - group.emptySinceMs < this.config.limits.autoGroupIdleMs) return false;
    this.groups.delete(group.name);
    this.log.info({ group: group.name }, `group ${group.name} removed: auto-created and empty for ${nowMs - group.emptySinceMs} ms`);
    for (const l of this.listeners) l.groupRemoved?.(group);
    return true;
  }
}

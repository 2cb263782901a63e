/**
 * Member registry: which groups exist, which replicas are attached to each,
 * and which group serves which method path. A member is added on attach and
 * removed on detach, on loss of its control stream, or after it misses
 * `missedReports` consecutive reports (see ./analyzer.ts).
 */
import { status as Status } from '@grpc/grpc-js';
import type { Logger } from '../common/logger';
import type { Hello__Output } from '../generated/rebind/v1/Hello';
import type { BalancerConfig, GroupConfig } from './config';
import { Group } from './group';
import { Member, type AdvisorySink } from './member';
import type { Refusal } from './validate';

/** Events the registry emits, for the analyzer and observers. */
export interface RegistryListener {
  groupAdded?(group: Group): void;
  memberAdded?(group: Group, member: Member): void;
  memberRemoved?(group: Group, member: Member, reason: string): void;
}

/** Replica ids remembered to tell a re-attachment from a first attachment. */
const MAX_REMEMBERED_REPLICAS = 100_000;

export class Registry {
  readonly groups = new Map<string, Group>();
  private readonly pathIndex = new Map<string, Group>();
  private readonly replicaIds = new Map<string, Member>();
  /** Replica ids that ever attached (bounded), to count re-attachments. */
  private readonly seenReplicaIds = new Set<string>();
  private nextMemberNumber = 1;
  private readonly listeners: RegistryListener[] = [];

  constructor(
    private config: BalancerConfig,
    private readonly log: Logger,
    private readonly random: () => number = Math.random,
  ) {
    for (const g of config.groups) this.addGroup(g);
  }

  listen(listener: RegistryListener): void {
    this.listeners.push(listener);
  }

  private addGroup(config: GroupConfig): Group {
    const group = new Group(config, this.log, this.random);
    this.groups.set(config.name, group);
    for (const l of this.listeners) l.groupAdded?.(group);
    return group;
  }

  /** The group serving a method path, if any (it may have no member left). */
  route(path: string): Group | undefined {
    return this.pathIndex.get(path);
  }

  /**
   * Attaches a replica (its Hello already validated). Returns the new member
   * or a refusal saying why it cannot join.
   */
  attach(hello: Hello__Output, sink: AdvisorySink, nowMs: number): Member | Refusal {
    let group = this.groups.get(hello.group);
    if (group === undefined) {
      if (!this.config.autoCreateGroups) {
        const known = [...this.groups.keys()].join(', ') || 'none';
        return { code: Status.NOT_FOUND, message: `group "${hello.group}" is not configured on this balancer (configured: ${known})` };
      }
      group = this.addGroup({ name: hello.group, ...this.config.groupDefaults });
      this.log.info({ group: group.name }, `group ${group.name} created on first attach`);
    }
    for (const m of hello.methods) {
      const owner = this.pathIndex.get(m.path);
      // A path belongs to the group that serves it; a group whose members all
      // left keeps answering for it (UNAVAILABLE) until another group takes it.
      if (owner !== undefined && owner !== group && owner.eligible(m.path).length > 0) {
        return { code: Status.FAILED_PRECONDITION, message: `method ${m.path} is already served by group "${owner.name}"; a path belongs to one group` };
      }
    }
    const existing = group.memberAt(hello.address);
    if (existing !== undefined) {
      if (hello.replicaId !== '' && this.replicaIds.get(hello.replicaId) === existing) {
        // The same replica re-attaching before its old stream was seen to die.
        this.detach(existing, 'replaced by a new attachment of the same replica');
        existing.sink.close(Status.ABORTED, 'replaced by a new attachment of the same replica');
      } else {
        return { code: Status.ALREADY_EXISTS, message: `address ${hello.address} is already attached to group "${group.name}" as member ${existing.id}` };
      }
    }
    if (group.members.size >= group.config.maxMembers) {
      return { code: Status.RESOURCE_EXHAUSTED, message: `group "${group.name}" already has ${group.members.size} members (limit maxMembers=${group.config.maxMembers})` };
    }
    const member = new Member(`m${this.nextMemberNumber++}`, group.name, hello.address, hello.methods, sink, nowMs, hello.replicaId);
    group.addMember(member);
    for (const m of hello.methods) this.pathIndex.set(m.path, group);
    group.counters.attaches++;
    if (hello.replicaId !== '') {
      this.replicaIds.set(hello.replicaId, member);
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
    if (this.replicaIds.get(member.replicaId) === member) this.replicaIds.delete(member.replicaId);
    this.log.info({ group: group.name, member: member.id, address: member.address, reason }, `member ${member.id} (${member.address}) removed: ${reason}`);
    for (const l of this.listeners) l.memberRemoved?.(group, member, reason);
  }
}
